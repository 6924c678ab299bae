-- The operations console: the people who may sign in to it (clinic IT, privacy officers), their
-- signed-in sessions (shared by every replica), and a running sync's progress where every
-- replica's console can read it.

CREATE TABLE operators (
    name          TEXT PRIMARY KEY,
    -- argon2id, as a PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)
    password_hash TEXT NOT NULL,
    -- space-separated: viewer, operator, privacy-officer
    roles         TEXT NOT NULL,
    enabled       BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE console_sessions (
    -- SHA-256 (hex) of the cookie's random value: the database never holds a usable session
    id_hash    TEXT PRIMARY KEY,
    operator   TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    -- the token every form of this session carries (CSRF)
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- A run's progress, written about once a second by whichever process runs it.
ALTER TABLE sync_runs ADD COLUMN done BIGINT;
ALTER TABLE sync_runs ADD COLUMN total BIGINT;
ALTER TABLE sync_runs ADD COLUMN progress_at TEXT;
