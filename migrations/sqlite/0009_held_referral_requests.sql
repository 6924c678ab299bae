-- A referral sent the RESTful way arrives in two requests: its ServiceRequest first, held here
-- until the Task that focuses it arrives; the intake then takes both (the row goes in the same
-- transaction, and its id becomes the intake's and the referral's).
CREATE TABLE held_referral_requests (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- the ServiceRequest's placer identifier (system|value): a resend finds it
    placer_key TEXT NOT NULL UNIQUE,
    -- the ServiceRequest as received, its Patient and requester contained
    resource TEXT NOT NULL
);
