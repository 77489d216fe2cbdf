-- Leads, the messages that made them, their timelines and the mailbox cursor.
-- Times are Unix milliseconds (UTC) so that SQLite and PostgreSQL store and compare them alike.

CREATE TABLE leads (
    id          INTEGER PRIMARY KEY,
    email       TEXT    NOT NULL UNIQUE,
    name        TEXT,
    company     TEXT,
    phone       TEXT,
    channel     TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'new',
    score       BIGINT  NOT NULL DEFAULT 0,
    owner       TEXT,
    form        TEXT,
    fields      TEXT    NOT NULL DEFAULT '{}',
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX leads_channel ON leads (channel);
CREATE INDEX leads_created ON leads (created_at);

CREATE TABLE inbound_messages (
    id           INTEGER PRIMARY KEY,
    mailbox      TEXT    NOT NULL,
    uidvalidity  BIGINT  NOT NULL,
    uid          BIGINT,
    dedupe_key   TEXT    NOT NULL UNIQUE,
    message_id   TEXT,
    kind         TEXT    NOT NULL,
    reason       TEXT,
    lead_email   TEXT,
    subject      TEXT,
    size         BIGINT  NOT NULL,
    sent_at      BIGINT,
    recorded_at  BIGINT  NOT NULL,
    -- The classifier's decision beyond the columns above (evidence, fields, bounce, dates).
    detail       TEXT    NOT NULL,
    UNIQUE (mailbox, uidvalidity, uid)
);
-- Which leads have a message of a kind (`leads list --kind`).
CREATE INDEX inbound_lead_kind ON inbound_messages (lead_email, kind);

-- Timeline entries that are not inbound messages (those are read from inbound_messages).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    lead_id     BIGINT  NOT NULL REFERENCES leads (id),
    at          BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX events_lead ON events (lead_id, at);

CREATE TABLE mailbox_state (
    mailbox      TEXT    PRIMARY KEY,
    uidvalidity  BIGINT  NOT NULL,
    last_uid     BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
