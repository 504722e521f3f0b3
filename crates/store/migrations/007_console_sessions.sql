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
