-- Live settings changed through the admin API. A row here wins over
-- config.toml and the environment at start-up (a differing configured value
-- is logged as overridden); DELETE /api/admin/settings removes the rows.
CREATE TABLE settings (
    name        TEXT PRIMARY KEY,   -- settings field: difficulty, challenge_timeout, token_hours, token_max_ips, max_tokens_per_ip
    value       INTEGER NOT NULL,   -- the value, in the field's unit (hashes, minutes, hours, count)
    updated_at  INTEGER NOT NULL    -- unix seconds of the change
);
