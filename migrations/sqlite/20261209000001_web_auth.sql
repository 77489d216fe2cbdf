-- Sign-in to the web view. Who may sign in, and as what, is `[[user]]` in the configuration;
-- these tables hold only what must not be there: password hashes, sessions and one-time
-- sign-in links. Users are keyed by their normalised (lower-case) address. Tokens are never
-- stored, only their SHA-256 (hex), so a copy of the database signs nobody in.
-- Times are Unix milliseconds (UTC).
CREATE TABLE user_passwords (
    email       TEXT    PRIMARY KEY,
    -- The argon2id hash in PHC form (`$argon2id$v=19$m=…`), salt included.
    hash        TEXT    NOT NULL,
    set_at      BIGINT  NOT NULL
);

CREATE TABLE web_sessions (
    -- SHA-256 of the cookie's token.
    token_hash  TEXT    PRIMARY KEY,
    email       TEXT    NOT NULL,
    -- The token every form of the session carries (CSRF); it is not a secret from the
    -- session's own pages, so it is kept as it is.
    csrf        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX web_sessions_email ON web_sessions (email);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE signin_links (
    -- SHA-256 of the link's token; the row is deleted when the link is used.
    token_hash  TEXT    PRIMARY KEY,
    email       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX signin_links_expires ON signin_links (expires_at);
