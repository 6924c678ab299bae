-- The clinic database: the IOP clinic's system of record.
-- Every table: `id` is the stable external identifier (a UUID, never reused), `version` counts
-- changes for optimistic concurrency, timestamps are fixed-width RFC 3339 UTC text (text order is
-- time order, and both backends read them the same way). Every insert, update and delete is written
-- to change_log by a trigger in the same transaction, so no writer can skip it.
-- This file and its PostgreSQL twin hold the same tables; only change_log's key and the triggers differ.
CREATE TABLE organizations (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('clinic','inpatient_hospital','outpatient_provider','partner_ehr')),
    name TEXT NOT NULL,
    npi TEXT,
    phone TEXT,
    address_line TEXT, city TEXT, state TEXT, postal_code TEXT
);
CREATE TABLE staff (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    role TEXT NOT NULL,
    credentials TEXT,
    npi TEXT,
    email TEXT,
    phone TEXT,
    active BIGINT NOT NULL CHECK (active IN (0, 1))
);
CREATE INDEX staff_organization_id_idx ON staff (organization_id);
CREATE TABLE clients (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    mrn TEXT NOT NULL UNIQUE,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    gender TEXT NOT NULL CHECK (gender IN ('male','female','other','unknown')),
    phone TEXT,
    email TEXT,
    address_line TEXT, city TEXT, state TEXT, postal_code TEXT,
    language TEXT
);
CREATE TABLE programs (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    population TEXT NOT NULL,
    focus TEXT NOT NULL,
    asam_level TEXT,
    part2 BIGINT NOT NULL CHECK (part2 IN (0, 1)),
    delivery TEXT NOT NULL,
    days_per_week BIGINT NOT NULL CHECK (days_per_week BETWEEN 3 AND 5),
    hours_per_week BIGINT NOT NULL CHECK (hours_per_week BETWEEN 6 AND 20)
);
CREATE TABLE therapy_groups (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    program_id TEXT NOT NULL REFERENCES programs(id),
    name TEXT NOT NULL,
    modality TEXT NOT NULL,
    facilitator_id TEXT NOT NULL REFERENCES staff(id)
);
CREATE INDEX therapy_groups_program_id_idx ON therapy_groups (program_id);
CREATE TABLE support_contacts (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    relationship TEXT NOT NULL,
    relationship_text TEXT,
    family_therapy_participant BIGINT NOT NULL CHECK (family_therapy_participant IN (0, 1)),
    emergency_contact BIGINT NOT NULL CHECK (emergency_contact IN (0, 1)),
    support_person BIGINT NOT NULL CHECK (support_person IN (0, 1)),
    phone TEXT,
    email TEXT,
    active_from TEXT NOT NULL,
    active_to TEXT,
    CHECK (relationship <> 'other' OR relationship_text IS NOT NULL),
    CHECK (active_to IS NULL OR active_to >= active_from)
);
CREATE INDEX support_contacts_client_id_idx ON support_contacts (client_id);
CREATE TABLE referrals (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    direction TEXT NOT NULL CHECK (direction IN ('inbound','outbound')),
    kind TEXT NOT NULL CHECK (kind IN ('step_down','step_up')),
    status TEXT NOT NULL CHECK (status IN ('requested','received','accepted','declined','completed','cancelled')),
    reason TEXT NOT NULL,
    referred_on TEXT NOT NULL,
    decided_on TEXT,
    referring_org_id TEXT NOT NULL REFERENCES organizations(id),
    receiving_org_id TEXT NOT NULL REFERENCES organizations(id),
    program_id TEXT REFERENCES programs(id)
);
CREATE INDEX referrals_client_id_idx ON referrals (client_id);
CREATE TABLE enrollments (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    program_id TEXT NOT NULL REFERENCES programs(id),
    referral_id TEXT REFERENCES referrals(id),
    referral_source_id TEXT REFERENCES organizations(id),
    admitted_on TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('planned','active','on_hold','discharged','cancelled')),
    discharged_on TEXT,
    discharge_disposition TEXT,
    level_of_care TEXT NOT NULL,
    primary_clinician_id TEXT NOT NULL REFERENCES staff(id),
    CHECK ((status = 'discharged') = (discharged_on IS NOT NULL AND discharge_disposition IS NOT NULL)),
    CHECK (discharged_on IS NULL OR discharged_on >= admitted_on)
);
CREATE INDEX enrollments_client_id_idx ON enrollments (client_id);
CREATE TABLE treatment_plans (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    enrollment_id TEXT NOT NULL REFERENCES enrollments(id),
    status TEXT NOT NULL CHECK (status IN ('draft','active','completed','revoked')),
    period_start TEXT NOT NULL,
    period_end TEXT,
    author_id TEXT NOT NULL REFERENCES staff(id),
    review_interval_days BIGINT NOT NULL CHECK (review_interval_days BETWEEN 1 AND 90),
    next_review_on TEXT
);
CREATE INDEX treatment_plans_enrollment_id_idx ON treatment_plans (enrollment_id);
CREATE TABLE plan_goals (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES treatment_plans(id),
    description TEXT NOT NULL,
    target_on TEXT,
    status TEXT NOT NULL,
    achievement TEXT
);
CREATE INDEX plan_goals_plan_id_idx ON plan_goals (plan_id);
CREATE TABLE plan_interventions (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES treatment_plans(id),
    modality TEXT NOT NULL,
    sessions_per_week BIGINT NOT NULL CHECK (sessions_per_week BETWEEN 1 AND 7),
    minutes_per_session BIGINT NOT NULL CHECK (minutes_per_session BETWEEN 15 AND 480),
    staff_id TEXT REFERENCES staff(id)
);
CREATE INDEX plan_interventions_plan_id_idx ON plan_interventions (plan_id);
CREATE TABLE plan_reviews (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES treatment_plans(id),
    reviewed_on TEXT NOT NULL,
    reviewer_id TEXT NOT NULL REFERENCES staff(id),
    summary TEXT NOT NULL,
    UNIQUE (plan_id, reviewed_on)
);
CREATE TABLE goal_progress_notes (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    goal_id TEXT NOT NULL REFERENCES plan_goals(id),
    review_id TEXT NOT NULL REFERENCES plan_reviews(id),
    note TEXT NOT NULL,
    UNIQUE (goal_id, review_id)
);
CREATE TABLE relapse_prevention_plans (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    plan_id TEXT NOT NULL UNIQUE REFERENCES treatment_plans(id),
    created_on TEXT NOT NULL
);
CREATE TABLE relapse_plan_items (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    relapse_plan_id TEXT NOT NULL REFERENCES relapse_prevention_plans(id),
    kind TEXT NOT NULL CHECK (kind IN ('trigger','warning_sign','coping_skill','support_contact')),
    position BIGINT NOT NULL,
    text TEXT,
    support_contact_id TEXT REFERENCES support_contacts(id),
    CHECK ((kind = 'support_contact') = (support_contact_id IS NOT NULL)),
    CHECK (kind = 'support_contact' OR text IS NOT NULL),
    UNIQUE (relapse_plan_id, position)
);
CREATE TABLE consents (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    kind TEXT NOT NULL CHECK (kind IN ('release_of_information','family_participation','part2_disclosure')),
    scope TEXT NOT NULL CHECK (scope IN ('all','all_except_substance_use','categories')),
    categories TEXT,
    recipient_org_id TEXT REFERENCES organizations(id),
    recipient_staff_id TEXT REFERENCES staff(id),
    recipient_contact_id TEXT REFERENCES support_contacts(id),
    purpose TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    signed_on TEXT NOT NULL,
    revoked_on TEXT,
    CHECK (num_nonnulls(recipient_org_id, recipient_staff_id, recipient_contact_id) = 1),
    CHECK ((scope = 'categories') = (categories IS NOT NULL)),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);
CREATE TABLE sessions (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    enrollment_id TEXT NOT NULL REFERENCES enrollments(id),
    session_type TEXT NOT NULL,
    modality TEXT,
    delivery TEXT NOT NULL CHECK (delivery IN ('in_person','virtual')),
    scheduled_start TEXT NOT NULL,
    duration_minutes BIGINT NOT NULL CHECK (duration_minutes BETWEEN 15 AND 480),
    clinician_id TEXT NOT NULL REFERENCES staff(id),
    attendance TEXT NOT NULL CHECK (attendance IN ('scheduled','attended','late','no_show','cancelled')),
    group_id TEXT REFERENCES therapy_groups(id),
    CHECK ((session_type = 'group') = (group_id IS NOT NULL))
);
CREATE INDEX sessions_enrollment_id_idx ON sessions (enrollment_id);
CREATE TABLE session_participants (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    support_contact_id TEXT NOT NULL REFERENCES support_contacts(id),
    UNIQUE (session_id, support_contact_id)
);

CREATE TABLE change_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('insert','update','delete')),
    row_version BIGINT NOT NULL,
    changed_at TEXT NOT NULL
);

CREATE TABLE seed_runs (
    singleton BIGINT NOT NULL PRIMARY KEY CHECK (singleton = 1),
    seed BIGINT NOT NULL,
    clients BIGINT NOT NULL,
    as_of TEXT NOT NULL,
    completed_at TEXT NOT NULL
);

CREATE FUNCTION iop_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
        VALUES (TG_TABLE_NAME, OLD.id, 'delete', OLD.version,
                to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
        RETURN OLD;
    END IF;
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES (TG_TABLE_NAME, NEW.id, lower(TG_OP), NEW.version, NEW.updated_at);
    RETURN NEW;
END
$$;
CREATE TRIGGER organizations_log AFTER INSERT OR UPDATE OR DELETE ON organizations FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER staff_log AFTER INSERT OR UPDATE OR DELETE ON staff FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER clients_log AFTER INSERT OR UPDATE OR DELETE ON clients FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER programs_log AFTER INSERT OR UPDATE OR DELETE ON programs FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER therapy_groups_log AFTER INSERT OR UPDATE OR DELETE ON therapy_groups FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER support_contacts_log AFTER INSERT OR UPDATE OR DELETE ON support_contacts FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER referrals_log AFTER INSERT OR UPDATE OR DELETE ON referrals FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER enrollments_log AFTER INSERT OR UPDATE OR DELETE ON enrollments FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER treatment_plans_log AFTER INSERT OR UPDATE OR DELETE ON treatment_plans FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER plan_goals_log AFTER INSERT OR UPDATE OR DELETE ON plan_goals FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER plan_interventions_log AFTER INSERT OR UPDATE OR DELETE ON plan_interventions FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER plan_reviews_log AFTER INSERT OR UPDATE OR DELETE ON plan_reviews FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER goal_progress_notes_log AFTER INSERT OR UPDATE OR DELETE ON goal_progress_notes FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER relapse_prevention_plans_log AFTER INSERT OR UPDATE OR DELETE ON relapse_prevention_plans FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER relapse_plan_items_log AFTER INSERT OR UPDATE OR DELETE ON relapse_plan_items FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER consents_log AFTER INSERT OR UPDATE OR DELETE ON consents FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER sessions_log AFTER INSERT OR UPDATE OR DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION iop_log_change();
CREATE TRIGGER session_participants_log AFTER INSERT OR UPDATE OR DELETE ON session_participants FOR EACH ROW EXECUTE FUNCTION iop_log_change();
