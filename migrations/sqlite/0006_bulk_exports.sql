-- Bulk Data $export jobs: one row per kick-off, run once by whichever replica holds its lease
-- (a lease that expires because its holder died lets another replica start the job again).
CREATE TABLE bulk_exports (
    id               TEXT PRIMARY KEY,
    -- who asked: the client, the organization it acts for, its purpose and granted scopes
    client_id        TEXT NOT NULL,
    organization_id  TEXT,
    purpose_of_use   TEXT,
    scopes           TEXT NOT NULL,
    open_access      BIGINT NOT NULL DEFAULT 0,
    -- the kick-off request URL as received (the manifest's `request`)
    request          TEXT NOT NULL,
    -- the parsed request: level, types, since, patients, type filters (JSON)
    params           TEXT NOT NULL,
    -- queued, running, done, failed, cancelled
    state            TEXT NOT NULL,
    transaction_time TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    lease_holder     TEXT,
    lease_expires    TEXT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    -- a short progress line for X-Progress
    progress         TEXT,
    -- the completion manifest (JSON) once done
    manifest         TEXT,
    error            TEXT,
    -- when the files are removed and the job forgotten
    expires_at       TEXT
);
CREATE INDEX bulk_exports_state ON bulk_exports (state, created_at);
