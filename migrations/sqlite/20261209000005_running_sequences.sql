-- The sequence files the daemon runs, as it read them at its last start or reload: what
-- `leadloop plan` compares an edit against before the next reload. Several daemons on one
-- database record the same files; the last one to load wins.
CREATE TABLE running_sequences (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    loaded_at BIGINT NOT NULL
);
