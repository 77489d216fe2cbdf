-- The outbox (rendered messages waiting to be sent, and what became of each) and the
-- suppression list (addresses and domains that are never sent to).
-- Times are Unix milliseconds (UTC), as in the initial schema.

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    lead_id          BIGINT  REFERENCES leads (id),
    -- NULL for messages outside a sequence (send-test); NULLs never collide in the UNIQUE below.
    enrollment_id    BIGINT,
    step_id          TEXT,
    from_addr        TEXT    NOT NULL,
    envelope_from    TEXT    NOT NULL,
    recipient        TEXT    NOT NULL,
    -- Lower-case, for the suppression check of whole domains.
    recipient_domain TEXT    NOT NULL,
    message_id       TEXT    NOT NULL,
    -- Size of the message in bytes (the bytes themselves are in outbox_bodies).
    size             BIGINT  NOT NULL,
    -- pending | sending | sent | retry | failed | interrupted | cancelled
    state            TEXT    NOT NULL DEFAULT 'pending',
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    -- While `sending`: when the claim expires and the row may be declared interrupted.
    lease_until      BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    sent_at          BIGINT,
    last_error       TEXT,
    smtp_response    TEXT,
    -- A step is enqueued at most once per enrollment.
    UNIQUE (enrollment_id, step_id)
);
-- What is due: only waiting rows are indexed, so the index stays as small as the backlog.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state IN ('pending', 'retry');
-- Claims left behind by a crashed sender.
CREATE INDEX outbox_sending ON outbox (lease_until) WHERE state = 'sending';
CREATE INDEX outbox_message_id ON outbox (message_id);

-- The messages' bytes, apart from their rows: a state change then rewrites a small row, not
-- the whole message.
CREATE TABLE outbox_bodies (
    outbox_id   INTEGER PRIMARY KEY REFERENCES outbox (id),
    raw         BLOB    NOT NULL
);

CREATE TABLE suppressions (
    -- 'address' (value is a normalised address) or 'domain' (value is a lower-case domain).
    kind        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (kind, value)
);
