-- Enrollments: a lead's way through one sequence, and the counters the send caps draw on.
-- Times are Unix milliseconds (UTC), as in the initial schema.

CREATE TABLE enrollments (
    id           INTEGER PRIMARY KEY,
    lead_id      BIGINT  NOT NULL REFERENCES leads (id),
    sequence     TEXT    NOT NULL,
    -- active | done | exited | held (a step failed to render; see error)
    state        TEXT    NOT NULL DEFAULT 'active',
    -- Step ids done or skipped, in order, space-separated: steps are remembered by id so an
    -- edited sequence file never resends one.
    steps_done   TEXT    NOT NULL DEFAULT '',
    -- The step waited for, once its due time is computed; NULL until then.
    next_step    TEXT,
    -- When the scheduler looks at this enrollment next; NULL when it is not active.
    next_due_at  BIGINT,
    -- When the previous step was handled (delays count from here).
    last_at      BIGINT  NOT NULL,
    -- Messages enqueued so far.
    touches      BIGINT  NOT NULL DEFAULT 0,
    -- 1 once a first message went out: follow-ups are claimed before first touches, so that
    -- under a cap a conversation already started goes on first.
    follow_up    SMALLINT NOT NULL DEFAULT 0,
    -- A scheduler's claim: others leave the row alone until lease_until.
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    -- Per-enrollment token in unsubscribe and reply plus-addresses and Message-IDs.
    token        TEXT    NOT NULL DEFAULT (lower(hex(randomblob(8)))),
    exit_reason  TEXT,
    error        TEXT,
    enrolled_at  BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
-- What is due: only enrollments with a due time are indexed. A claim reads one range per
-- priority in due order and stops after a batch, so a tick costs what it claims, however many
-- leads are enrolled or waiting; lease_until is in the index so choosing never reads the table.
CREATE INDEX enrollments_due ON enrollments (follow_up, next_due_at, lease_until) WHERE next_due_at IS NOT NULL;
-- A lead is at most once at a time in a sequence.
CREATE UNIQUE INDEX enrollments_active ON enrollments (lead_id, sequence) WHERE state = 'active';
CREATE INDEX enrollments_lead ON enrollments (lead_id, sequence);
CREATE UNIQUE INDEX enrollments_token ON enrollments (token);

-- Messages counted against the send caps, per key (sender:NAME:m, domain:D:d, lead:ID:d) and
-- period start.
CREATE TABLE send_counts (
    key     TEXT    NOT NULL,
    bucket  BIGINT  NOT NULL,
    count   BIGINT  NOT NULL,
    PRIMARY KEY (key, bucket)
);
CREATE INDEX send_counts_bucket ON send_counts (bucket);
