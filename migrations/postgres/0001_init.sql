-- powgate schema for PostgreSQL, version 1: the SQLite schema of
-- migrations/0001_init.sql to 0003_token_requests.sql in one step. Never
-- edit a migration that has been applied; add the next numbered file.
-- Times are unix seconds in bigint, as in SQLite, so both backends share
-- one clock arithmetic.

-- Secrets generated at first start, so every instance and every restart
-- use the same ones.
CREATE TABLE secrets (
    name        text PRIMARY KEY,     -- e.g. 'challenge_hmac_key'
    value       bytea NOT NULL,       -- the secret, or only its hash where that suffices
    created_at  bigint NOT NULL       -- unix seconds
);

-- Challenges that have been submitted once. A challenge is spent by
-- inserting its id here; the primary key makes a second insert fail, on
-- this instance or any other, so two concurrent submissions cannot both win.
CREATE TABLE spent_challenges (
    id          bytea PRIMARY KEY CHECK (octet_length(id) = 16),  -- the challenge id
    spent_at    bigint NOT NULL,      -- unix seconds
    expires_at  bigint NOT NULL       -- unix seconds; the row is purged after this, when the challenge is refused anyway
);
CREATE INDEX spent_challenges_expires_at ON spent_challenges (expires_at);

-- User tokens. Only the SHA-256 of a token is stored.
CREATE TABLE tokens (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash     bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),  -- SHA-256 of the token's 16 UUID bytes
    created_at     bigint NOT NULL,   -- unix seconds, first solve
    expires_at     bigint NOT NULL,   -- unix seconds; refreshable until expires_at + purge hours
    revoked_at     bigint,            -- unix seconds, set by an operator; never valid again
    issuer_ip      text NOT NULL,     -- address key that solved it: IPv4, or IPv6 /64
    refresh_count  bigint NOT NULL DEFAULT 0 CHECK (refresh_count >= 0),  -- half-difficulty refreshes so far
    difficulty     bigint NOT NULL CHECK (difficulty >= 0),               -- difficulty of the challenge that created it
    requests_used  bigint NOT NULL DEFAULT 0 CHECK (requests_used >= 0)   -- passed /verify-token requests since issue or the last refresh
);
CREATE INDEX tokens_expires_at ON tokens (expires_at);
CREATE INDEX tokens_issuer_ip ON tokens (issuer_ip, expires_at);

-- Distinct addresses a token has been used from; at most POW_TOKEN_MAX_IPS.
-- Adding one locks the token's row first (SELECT … FOR UPDATE), so
-- instances adding addresses at once take turns at the count.
CREATE TABLE token_ips (
    token_id    bigint NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    ip          text NOT NULL,        -- address key: IPv4, or IPv6 /64
    first_seen  bigint NOT NULL,      -- unix seconds
    PRIMARY KEY (token_id, ip)
);

-- Live settings changed through the admin API. A row here wins over
-- config.toml and the environment at start-up; DELETE /api/admin/settings
-- removes the rows. A change is announced to the other instances with
-- NOTIFY in the same transaction.
CREATE TABLE settings (
    name        text PRIMARY KEY,     -- settings field, as in server/src/settings.rs
    value       bigint NOT NULL,      -- the value, in the field's unit
    updated_at  bigint NOT NULL       -- unix seconds of the change
);
