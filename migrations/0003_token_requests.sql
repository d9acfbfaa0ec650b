-- Request budgets per token (issue 15). Counted in memory on /verify-token
-- and added here in batches every few seconds and at shutdown, so a crash
-- loses at most one flush interval of counts (server/src/token_usage.rs).
ALTER TABLE tokens ADD COLUMN requests_used INTEGER NOT NULL DEFAULT 0;  -- passed /verify-token requests since the token was issued or last refreshed
