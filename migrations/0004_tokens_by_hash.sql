-- Tokens keyed by their hash, with their addresses in the row, and their
-- request counts in a narrow table of their own (issue 17's scale figure,
-- README part (g)).
--
-- A token /verify-token has not cached used to cost three B-tree descents
-- (the token_hash index, the row, the token_ips row), and with a million
-- tokens stored each was a page read; now it is two (the row, its counts).
-- The counts are apart because the request-count flush rewrites them for
-- every token used in the last few seconds: in the narrow table that
-- dirties a fifth of the pages it would in the token rows.
--
-- The id stays the token's name everywhere else (revocation, the admin
-- list, request counts); it is unique and indexed, and a new token still
-- takes the largest id so far plus one.
--
-- ips holds the token's addresses (at most POW_TOKEN_MAX_IPS) as a JSON
-- array of [address key, first seen in unix seconds], ordered by
-- (first seen, address): server/src/store/sqlite/tokens.rs reads and
-- writes it, inside the transaction that checks the address limit.
CREATE TABLE tokens_by_hash (
    token_hash     BLOB PRIMARY KEY,      -- SHA-256 of the token's 16 UUID bytes
    id             INTEGER NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,      -- unix seconds, first solve
    expires_at     INTEGER NOT NULL,      -- unix seconds; refreshable until expires_at + purge hours
    revoked_at     INTEGER,               -- unix seconds, set by an operator; never valid again
    issuer_ip      TEXT NOT NULL,         -- address key that solved it: IPv4, or IPv6 /64
    difficulty     INTEGER NOT NULL,      -- difficulty of the challenge that created it
    ips            TEXT NOT NULL          -- [[address key, first seen], …], oldest first
) WITHOUT ROWID;

-- One row per token, written with it and deleted with it.
CREATE TABLE token_requests (
    token_id       INTEGER PRIMARY KEY REFERENCES tokens_by_hash (id) ON DELETE CASCADE,
    refresh_count  INTEGER NOT NULL DEFAULT 0,  -- half-difficulty refreshes so far
    requests_used  INTEGER NOT NULL DEFAULT 0   -- passed /verify-token requests since issue or the last refresh
);

INSERT INTO tokens_by_hash
    (token_hash, id, created_at, expires_at, revoked_at, issuer_ip, difficulty, ips)
SELECT t.token_hash, t.id, t.created_at, t.expires_at, t.revoked_at, t.issuer_ip, t.difficulty,
       coalesce((SELECT json_group_array(json_array(i.ip, i.first_seen) ORDER BY i.first_seen, i.ip)
                 FROM token_ips i WHERE i.token_id = t.id), '[]')
FROM tokens t;
INSERT INTO token_requests (token_id, refresh_count, requests_used)
SELECT id, refresh_count, requests_used FROM tokens;

DROP TABLE token_ips;
DROP TABLE tokens;
-- Renaming also renames token_requests' reference.
ALTER TABLE tokens_by_hash RENAME TO tokens;
CREATE INDEX tokens_expires_at ON tokens (expires_at);
CREATE INDEX tokens_issuer_ip ON tokens (issuer_ip, expires_at);
