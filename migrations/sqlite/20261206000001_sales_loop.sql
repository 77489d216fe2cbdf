-- The loop back from Sales: hand-offs, verdicts, owners, aliases, out-of-office pauses.
-- Times are Unix milliseconds (UTC), as in the initial schema.

-- Other addresses of a lead (the From of an inquiry whose Reply-To is the lead's, a reply
-- from a second address): mail from them reaches the same lead.
CREATE TABLE lead_aliases (
    email       TEXT    PRIMARY KEY,
    lead_id     BIGINT  NOT NULL REFERENCES leads (id),
    created_at  BIGINT  NOT NULL
);
CREATE INDEX lead_aliases_lead ON lead_aliases (lead_id);

-- Notifications to our own people about a lead: a hand-off to its owner, or the short
-- explanation sent when an answer to a hand-off held no verdict. Written with the message
-- that caused them, in its transaction; the hand-off worker renders and enqueues them.
CREATE TABLE handoffs (
    id          INTEGER PRIMARY KEY,
    lead_id     BIGINT  NOT NULL REFERENCES leads (id),
    -- handoff | explain
    kind        TEXT    NOT NULL,
    -- explain: the Sales sender; handoff: NULL (the lead's owner when the worker runs).
    recipient   TEXT,
    -- handoff: why Sales is told; explain: what was not understood.
    why         TEXT    NOT NULL,
    -- The inbound message that caused it (its dedupe key), for its text and subject.
    inbound_key TEXT,
    -- Reply-To: inbox+handoff-TOKEN@…, so an answer maps back to the lead.
    token       TEXT    NOT NULL DEFAULT (lower(hex(randomblob(8)))),
    -- pending | queued | skipped
    state       TEXT    NOT NULL DEFAULT 'pending',
    -- Why it was skipped (an interval, no owner, an explanation just sent).
    note        TEXT,
    outbox_id   BIGINT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX handoffs_token ON handoffs (token);
CREATE INDEX handoffs_pending ON handoffs (id) WHERE state = 'pending';
CREATE INDEX handoffs_lead ON handoffs (lead_id, created_at);
CREATE INDEX handoffs_outbox ON handoffs (outbox_id);

-- What Sales said about a lead, every answer kept; the newest is the lead's verdict.
CREATE TABLE verdicts (
    id          INTEGER PRIMARY KEY,
    lead_id     BIGINT  NOT NULL REFERENCES leads (id),
    -- qualified | unqualified | customer | not_now | nurture | owner
    verdict     TEXT    NOT NULL,
    reason      TEXT,
    comment     TEXT,
    -- not_now: the date (YYYY-MM-DD); nurture: the sequence; owner: the address.
    target      TEXT,
    by_addr     TEXT    NOT NULL,
    -- mail | cli
    source      TEXT    NOT NULL,
    inbound_key TEXT,
    at          BIGINT  NOT NULL
);
CREATE INDEX verdicts_lead ON verdicts (lead_id, at);

-- Round-robin routes: how many leads each has assigned, so the next goes to the next owner.
CREATE TABLE route_turns (
    route       TEXT    PRIMARY KEY,
    turns       BIGINT  NOT NULL
);

-- An out-of-office or a `not now` holds the enrollment's next step until then.
ALTER TABLE enrollments ADD COLUMN paused_until BIGINT;
