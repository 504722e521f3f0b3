-- Autoscaler policies registered over the API (policies from app labels are not stored:
-- the app definition carries them), the controller's memory per app, and its decisions.
CREATE TABLE autoscalers (
    app_id TEXT PRIMARY KEY,
    -- The complete policy as JSON (autoscale::Policy).
    policy TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- What the controller remembers between decisions (autoscale::ControllerState as JSON), and
-- a scale it decided but may not have applied yet (crash-only: applied again after a restart).
CREATE TABLE autoscaler_state (
    app_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    pending_target INTEGER,
    -- The app version the autoscaler's last scale created (to tell its scales from people's).
    own_version INTEGER,
    updated_at INTEGER NOT NULL
);

-- Decisions with their inputs, newest kept (bounded per app by the writer).
CREATE TABLE autoscale_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    change INTEGER NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX autoscale_decisions_app ON autoscale_decisions (app_id, seq);
