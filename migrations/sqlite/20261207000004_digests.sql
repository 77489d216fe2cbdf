-- Digests (`[[digest]]`): one row per digest and period, written in the transaction that puts
-- its messages in the outbox. The UNIQUE key is what keeps a digest to once per period across
-- restarts and daemons: a second writer's insert finds the row and sends nothing.
-- Times are Unix milliseconds (UTC).
CREATE TABLE digests (
    id            INTEGER PRIMARY KEY,
    -- The `[[digest]] name`.
    name          TEXT    NOT NULL,
    -- The period it covers: from `period_start` (inclusive) to `period_end` (exclusive),
    -- midnights in the team's time zone.
    period_start  BIGINT  NOT NULL,
    period_end    BIGINT  NOT NULL,
    -- `week 2026-W48` or `month 2026-11`, as the subject says.
    label         TEXT    NOT NULL,
    -- How many outbox rows (one per recipient) it queued.
    messages      BIGINT  NOT NULL,
    queued_at     BIGINT  NOT NULL,
    UNIQUE (name, period_start)
);
