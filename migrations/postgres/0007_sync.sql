-- Sync targets (external EHR FHIR endpoints) and what each holds of the clinic's records.
-- Secrets are never stored here: a target names the file its bearer token or SMART key is in.
CREATE TABLE sync_targets (
    name             TEXT PRIMARY KEY,
    base_url         TEXT NOT NULL,
    -- none, bearer (credential_file holds the token) or smart (credential_file holds the key)
    auth_kind        TEXT NOT NULL CHECK (auth_kind IN ('none', 'bearer', 'smart')),
    credential_file  TEXT,
    smart_client_id  TEXT,
    token_url        TEXT,
    -- the FHIR types pushed, comma-separated
    resources        TEXT NOT NULL,
    -- the recipient organization consent decides for (NULL: the clinic's own)
    organization_id  TEXT,
    interval_seconds BIGINT,
    -- the change-log sequence number every change up to which the target has confirmed
    push_checkpoint  BIGINT NOT NULL DEFAULT 0,
    -- the target's own lastUpdated of the newest resource pulled
    pull_since       TEXT,
    -- one sync run per target at a time, by whichever process holds the lease
    lease_holder     TEXT,
    lease_expires    TEXT,
    next_run_at      TEXT,
    last_run         TEXT,
    created_at       TEXT NOT NULL
);

-- The identity map: a clinic resource and the target's copy of it.
CREATE TABLE sync_resources (
    target          TEXT NOT NULL REFERENCES sync_targets (name) ON DELETE CASCADE,
    resource_type   TEXT NOT NULL,
    local_id        TEXT NOT NULL,
    remote_id       TEXT,
    -- the target's versionId of its copy, as last seen
    remote_version  TEXT,
    -- the clinic version the target's copy is of (pushed, or written by a pull)
    synced_version  BIGINT,
    -- a hash of the target's copy as last pulled (targets without _lastUpdated)
    remote_hash     TEXT,
    -- a create was sent and its outcome is not known until remote_id is set
    create_sent_at  TEXT,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (target, resource_type, local_id)
);
CREATE UNIQUE INDEX sync_resources_remote ON sync_resources (target, resource_type, remote_id);

-- Resources a target refused, or that were invalid at the source: kept with the reason until
-- sent (a later version, or `sync dead-letters --retry`).
CREATE TABLE sync_dead_letters (
    target         TEXT NOT NULL REFERENCES sync_targets (name) ON DELETE CASCADE,
    direction      TEXT NOT NULL CHECK (direction IN ('push', 'pull')),
    resource_type  TEXT NOT NULL,
    local_id       TEXT NOT NULL,
    local_version  BIGINT,
    http_status    BIGINT,
    -- the target's OperationOutcome, or the validator's (JSON)
    reason         TEXT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 1,
    first_failed   TEXT NOT NULL,
    last_failed    TEXT NOT NULL,
    PRIMARY KEY (target, direction, resource_type, local_id)
);

-- One row per sync run: who ran it, when, and its summary (JSON).
CREATE TABLE sync_runs (
    id          TEXT PRIMARY KEY,
    target      TEXT NOT NULL,
    direction   TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    summary     TEXT,
    error       TEXT
);
CREATE INDEX sync_runs_target ON sync_runs (target, started_at);
