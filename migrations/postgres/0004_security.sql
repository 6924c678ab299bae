-- Security: the registry of API clients (SMART Backend Services), the client assertions already
-- used (replay refused across replicas), the key access tokens are signed with (shared by every
-- replica), and the audit trail of disclosures (append-only: the triggers below refuse UPDATE and
-- DELETE).

CREATE TABLE api_clients (
    client_id       TEXT PRIMARY KEY,
    -- exactly one of an inline JWKS (JSON text) and a JWKS URL
    jwks            TEXT,
    jwks_url        TEXT,
    -- the SMART scopes the client may be granted, space-separated
    scopes          TEXT NOT NULL,
    -- the recipient of what the client is given (consent decisions), an Organization id
    organization_id TEXT,
    -- the purpose of use its requests are made for (v3 ActReason code: TREAT, HPAYMT, ...)
    purpose_of_use  TEXT NOT NULL,
    enabled         BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK ((jwks IS NULL) <> (jwks_url IS NULL))
);

CREATE TABLE seen_client_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    -- the assertion's exp: after it the assertion is refused anyway, so the row may go
    expires_at TEXT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX seen_client_assertions_expiry ON seen_client_assertions (expires_at);

CREATE TABLE token_signing_keys (
    kid        TEXT PRIMARY KEY,
    -- base64 of 32 random bytes (HMAC-SHA256 key of the gateway's own access tokens)
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,
    recorded        TEXT NOT NULL,
    -- read, vread, history, search, create, update, delete, transaction, batch, validate, token
    interaction     TEXT NOT NULL,
    -- C R U D E (FHIR AuditEventAction)
    action          TEXT NOT NULL,
    -- 0 success, 4 minor failure (refused), 8 serious failure, 12 major failure
    outcome         BIGINT NOT NULL,
    outcome_desc    TEXT,
    client_id       TEXT,
    organization_id TEXT,
    purpose_of_use  TEXT,
    -- the access token's jti (token use) or the issued token's jti
    token_id        TEXT,
    request_id      TEXT,
    source_address  TEXT,
    -- the resource type asked for (searches, history)
    resource_type   TEXT,
    -- the query as received (searches), for the accounting of disclosures
    query           TEXT,
    -- the resources disclosed or changed, JSON array of "Type/id"
    entities        TEXT NOT NULL
);
CREATE INDEX audit_events_recorded ON audit_events (recorded, id);
CREATE INDEX audit_events_client ON audit_events (client_id, recorded);

CREATE TABLE audit_event_patients (
    audit_id   TEXT NOT NULL REFERENCES audit_events (id),
    patient_id TEXT NOT NULL,
    PRIMARY KEY (audit_id, patient_id)
);
CREATE INDEX audit_event_patients_patient ON audit_event_patients (patient_id, audit_id);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_event_patients_append_only BEFORE UPDATE OR DELETE ON audit_event_patients
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_event_patients_no_truncate BEFORE TRUNCATE ON audit_event_patients
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
