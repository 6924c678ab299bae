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
    CHECK ((recipient_org_id IS NOT NULL) + (recipient_staff_id IS NOT NULL) + (recipient_contact_id IS NOT NULL) = 1),
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
    seq INTEGER PRIMARY KEY, -- no AUTOINCREMENT: it costs a sqlite_sequence update per row; entries are never deleted from the top, so seq still only grows
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

CREATE TRIGGER organizations_log_insert AFTER INSERT ON organizations BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('organizations', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER organizations_log_update AFTER UPDATE ON organizations BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('organizations', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER organizations_log_delete AFTER DELETE ON organizations BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('organizations', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER staff_log_insert AFTER INSERT ON staff BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('staff', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER staff_log_update AFTER UPDATE ON staff BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('staff', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER staff_log_delete AFTER DELETE ON staff BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('staff', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER clients_log_insert AFTER INSERT ON clients BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('clients', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER clients_log_update AFTER UPDATE ON clients BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('clients', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER clients_log_delete AFTER DELETE ON clients BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('clients', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER programs_log_insert AFTER INSERT ON programs BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('programs', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER programs_log_update AFTER UPDATE ON programs BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('programs', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER programs_log_delete AFTER DELETE ON programs BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('programs', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER therapy_groups_log_insert AFTER INSERT ON therapy_groups BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('therapy_groups', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER therapy_groups_log_update AFTER UPDATE ON therapy_groups BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('therapy_groups', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER therapy_groups_log_delete AFTER DELETE ON therapy_groups BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('therapy_groups', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER support_contacts_log_insert AFTER INSERT ON support_contacts BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('support_contacts', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER support_contacts_log_update AFTER UPDATE ON support_contacts BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('support_contacts', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER support_contacts_log_delete AFTER DELETE ON support_contacts BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('support_contacts', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER referrals_log_insert AFTER INSERT ON referrals BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('referrals', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER referrals_log_update AFTER UPDATE ON referrals BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('referrals', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER referrals_log_delete AFTER DELETE ON referrals BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('referrals', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER enrollments_log_insert AFTER INSERT ON enrollments BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('enrollments', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER enrollments_log_update AFTER UPDATE ON enrollments BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('enrollments', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER enrollments_log_delete AFTER DELETE ON enrollments BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('enrollments', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER treatment_plans_log_insert AFTER INSERT ON treatment_plans BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('treatment_plans', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER treatment_plans_log_update AFTER UPDATE ON treatment_plans BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('treatment_plans', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER treatment_plans_log_delete AFTER DELETE ON treatment_plans BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('treatment_plans', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER plan_goals_log_insert AFTER INSERT ON plan_goals BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_goals', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER plan_goals_log_update AFTER UPDATE ON plan_goals BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_goals', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER plan_goals_log_delete AFTER DELETE ON plan_goals BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_goals', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER plan_interventions_log_insert AFTER INSERT ON plan_interventions BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_interventions', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER plan_interventions_log_update AFTER UPDATE ON plan_interventions BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_interventions', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER plan_interventions_log_delete AFTER DELETE ON plan_interventions BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_interventions', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER plan_reviews_log_insert AFTER INSERT ON plan_reviews BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_reviews', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER plan_reviews_log_update AFTER UPDATE ON plan_reviews BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_reviews', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER plan_reviews_log_delete AFTER DELETE ON plan_reviews BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('plan_reviews', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER goal_progress_notes_log_insert AFTER INSERT ON goal_progress_notes BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('goal_progress_notes', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER goal_progress_notes_log_update AFTER UPDATE ON goal_progress_notes BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('goal_progress_notes', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER goal_progress_notes_log_delete AFTER DELETE ON goal_progress_notes BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('goal_progress_notes', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER relapse_prevention_plans_log_insert AFTER INSERT ON relapse_prevention_plans BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('relapse_prevention_plans', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER relapse_prevention_plans_log_update AFTER UPDATE ON relapse_prevention_plans BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('relapse_prevention_plans', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER relapse_prevention_plans_log_delete AFTER DELETE ON relapse_prevention_plans BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('relapse_prevention_plans', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER relapse_plan_items_log_insert AFTER INSERT ON relapse_plan_items BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('relapse_plan_items', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER relapse_plan_items_log_update AFTER UPDATE ON relapse_plan_items BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('relapse_plan_items', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER relapse_plan_items_log_delete AFTER DELETE ON relapse_plan_items BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('relapse_plan_items', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER consents_log_insert AFTER INSERT ON consents BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('consents', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER consents_log_update AFTER UPDATE ON consents BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('consents', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER consents_log_delete AFTER DELETE ON consents BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('consents', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER sessions_log_insert AFTER INSERT ON sessions BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('sessions', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER sessions_log_update AFTER UPDATE ON sessions BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('sessions', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER sessions_log_delete AFTER DELETE ON sessions BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('sessions', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;

CREATE TRIGGER session_participants_log_insert AFTER INSERT ON session_participants BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('session_participants', NEW.id, 'insert', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER session_participants_log_update AFTER UPDATE ON session_participants BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('session_participants', NEW.id, 'update', NEW.version, NEW.updated_at);
END;

CREATE TRIGGER session_participants_log_delete AFTER DELETE ON session_participants BEGIN
    INSERT INTO change_log (table_name, row_id, operation, row_version, changed_at)
    VALUES ('session_participants', OLD.id, 'delete', OLD.version, strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'));
END;
