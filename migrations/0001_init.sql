-- powgate schema, version 1. Never edit a migration that has been applied;
-- add the next numbered file instead.

-- Secrets generated at first start, so a restart keeps them.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,   -- e.g. 'challenge_hmac_key'
    value       BLOB NOT NULL,      -- the secret, or only its hash where that suffices
    created_at  INTEGER NOT NULL    -- unix seconds
);

-- Challenges that have been submitted once. A challenge is spent by
-- inserting its id here; the primary key makes a second insert fail, so two
-- concurrent submissions cannot both win.
CREATE TABLE spent_challenges (
    id          BLOB PRIMARY KEY,   -- the 16-byte challenge id
    spent_at    INTEGER NOT NULL,   -- unix seconds
    expires_at  INTEGER NOT NULL    -- unix seconds; the row is purged after this, when the challenge is refused anyway
) WITHOUT ROWID;
CREATE INDEX spent_challenges_expires_at ON spent_challenges (expires_at);

-- User tokens. Only the SHA-256 of a token is stored.
CREATE TABLE tokens (
    id             INTEGER PRIMARY KEY,
    token_hash     BLOB NOT NULL UNIQUE,  -- SHA-256 of the token's 16 UUID bytes
    created_at     INTEGER NOT NULL,      -- unix seconds, first solve
    expires_at     INTEGER NOT NULL,      -- unix seconds; refreshable until expires_at + purge hours
    revoked_at     INTEGER,               -- unix seconds, set by an operator; never valid again
    issuer_ip      TEXT NOT NULL,         -- address key that solved it: IPv4, or IPv6 /64
    refresh_count  INTEGER NOT NULL DEFAULT 0,  -- half-difficulty refreshes so far
    difficulty     INTEGER NOT NULL       -- difficulty of the challenge that created it
);
CREATE INDEX tokens_expires_at ON tokens (expires_at);
CREATE INDEX tokens_issuer_ip ON tokens (issuer_ip, expires_at);

-- Distinct addresses a token has been used from; at most POW_TOKEN_MAX_IPS.
CREATE TABLE token_ips (
    token_id    INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    ip          TEXT NOT NULL,      -- address key: IPv4, or IPv6 /64
    first_seen  INTEGER NOT NULL,   -- unix seconds
    PRIMARY KEY (token_id, ip)
) WITHOUT ROWID;
