-- A client registered as one of the clinic's own applications (`clients add --clinic-app`)
-- may create and change the clinic's own records (treatment plans, goals, reviews,
-- relapse-prevention plans); an external EHR's client may not, whatever its scopes.
ALTER TABLE api_clients ADD COLUMN clinic_app BIGINT NOT NULL DEFAULT 0 CHECK (clinic_app IN (0, 1));
