-- Current app definitions (canonical Marathon JSON).
CREATE TABLE apps (
    id         TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
-- Every stored version of every app, for /versions and rollback. Pruned per app.
CREATE TABLE app_versions (
    app_id     TEXT NOT NULL,
    version    TEXT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (app_id, version)
);
-- Deployments in progress.
CREATE TABLE deployments (
    id         TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
-- Finished deployments with their outcome. Pruned to a bounded history.
CREATE TABLE deployment_history (
    id          TEXT PRIMARY KEY,
    finished_at INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX deployment_history_finished ON deployment_history (finished_at);
-- Tasks the engine started and has not yet forgotten.
CREATE TABLE tasks (
    id     TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    body   TEXT NOT NULL
);
-- Per-app runtime state: launch backoff and the last task failure.
CREATE TABLE app_runtime (
    app_id TEXT PRIMARY KEY,
    body   TEXT NOT NULL
);
-- Installation facts: agent id, service port allocations and the like.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
