-- Web console sessions, so a restart of the server does not sign every browser out. The
-- cookie's value is never stored: rows are keyed by its hash, and what the session holds
-- (the user's API token, the CSRF token) is sealed with the server's secret key.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    token_id TEXT,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- A pipeline's newest runs (the console's overview and pipeline pages, `runs list`) are
-- read through an index instead of sorting every run of every pipeline.
CREATE INDEX runs_pipeline_newest ON runs (pipeline, created_at DESC, number DESC);
CREATE INDEX runs_newest ON runs (created_at DESC, number DESC);
