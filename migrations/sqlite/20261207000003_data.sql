-- Data in and out: resumable imports and the key that hashes erased addresses.
-- Times are Unix milliseconds (UTC), as in the initial schema.

-- How far an import got, per file content and column mapping (`file_key`, a SHA-256), so the
-- same command run again after an interruption continues after the last committed line.
CREATE TABLE import_progress (
    file_key    TEXT    PRIMARY KEY,
    -- The file's name as given, for messages.
    file_name   TEXT    NOT NULL,
    -- The last line of the file whose row is committed.
    line        BIGINT  NOT NULL,
    created     BIGINT  NOT NULL DEFAULT 0,
    updated     BIGINT  NOT NULL DEFAULT 0,
    unchanged   BIGINT  NOT NULL DEFAULT 0,
    bad         BIGINT  NOT NULL DEFAULT 0,
    -- 1 once the whole file went through.
    done        BIGINT  NOT NULL DEFAULT 0,
    started_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- Per-database secrets, made on first use. 'erasure': the HMAC-SHA256 key of the hashed
-- suppressions `leadloop leads erase` leaves, so an erased address is refused without being
-- stored.
CREATE TABLE data_secrets (
    name        TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
