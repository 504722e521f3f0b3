-- Pipelines known to the server: where their file lives (a JSON document).
CREATE TABLE pipelines (
    name       TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Runs: numbered per pipeline, newest last.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    pipeline     TEXT NOT NULL,
    number       INTEGER NOT NULL,
    status       TEXT NOT NULL,
    event        TEXT NOT NULL,
    triggered_by TEXT NOT NULL,
    branch       TEXT NOT NULL,
    sha          TEXT NOT NULL,
    params       TEXT NOT NULL,
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    UNIQUE (pipeline, number)
);
CREATE INDEX runs_status ON runs (status);
-- The steps of a run, as the executor reported them.
CREATE TABLE run_steps (
    run_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    outputs     TEXT NOT NULL DEFAULT '{}',
    started_at  INTEGER,
    finished_at INTEGER,
    decided_by  TEXT,
    decided_at  INTEGER,
    PRIMARY KEY (run_id, name)
);
-- Log lines of steps (already masked), numbered per step; bounded by trimming.
CREATE TABLE run_logs (
    run_id TEXT NOT NULL,
    step   TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    stream TEXT NOT NULL,
    line   TEXT NOT NULL,
    PRIMARY KEY (run_id, step, seq)
);
