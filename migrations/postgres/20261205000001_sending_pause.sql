-- Whether sending is paused, for every daemon sharing this database: one row, present from the
-- start, so a fresh database answers `leadloop sending status`. A pause is set by a person
-- (`leadloop sending pause`) or by a sender whose server refused *us* (credentials, sender
-- address, relay permission) or refused many recipients alike; only a person resumes.
-- Times are Unix milliseconds (UTC).
CREATE TABLE sending_control (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    -- NULL while sending runs.
    paused_at   BIGINT,
    -- Who paused: 'cli' or 'breaker'.
    paused_by   TEXT,
    -- What happened and the likely fix, for the person who resumes.
    reason      TEXT,
    updated_at  BIGINT  NOT NULL
);
INSERT INTO sending_control (id, paused_at, paused_by, reason, updated_at) VALUES (1, NULL, NULL, NULL, 0);
