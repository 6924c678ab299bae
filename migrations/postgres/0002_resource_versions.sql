-- A FHIR resource's version is its main row's version, so every row that a resource shows beside
-- its main row bumps that main row (version + 1, updated_at, and so a change_log entry) in the same
-- transaction: a new review changes its CarePlan's version and ETag, an attendance change its
-- Encounter's, a Part 2 enrollment the security labels of every resource about the client. Done by
-- triggers, like the change log, so writers that bypass the gateway bump versions too.
-- What each resource shows is in src/assemble.rs; keep the two in step (tests/resource_versions.rs).

CREATE FUNCTION iop_plan_goals_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) WHERE id = OLD.plan_id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.plan_id IS DISTINCT FROM NEW.plan_id THEN
        UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.plan_id;
    END IF;
    UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.plan_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER plan_goals_bump AFTER INSERT OR UPDATE OR DELETE ON plan_goals FOR EACH ROW EXECUTE FUNCTION iop_plan_goals_bump();
CREATE FUNCTION iop_plan_interventions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) WHERE id = OLD.plan_id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.plan_id IS DISTINCT FROM NEW.plan_id THEN
        UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.plan_id;
    END IF;
    UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.plan_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER plan_interventions_bump AFTER INSERT OR UPDATE OR DELETE ON plan_interventions FOR EACH ROW EXECUTE FUNCTION iop_plan_interventions_bump();
CREATE FUNCTION iop_plan_reviews_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) WHERE id = OLD.plan_id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.plan_id IS DISTINCT FROM NEW.plan_id THEN
        UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.plan_id;
    END IF;
    UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.plan_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER plan_reviews_bump AFTER INSERT OR UPDATE OR DELETE ON plan_reviews FOR EACH ROW EXECUTE FUNCTION iop_plan_reviews_bump();
CREATE FUNCTION iop_goal_progress_notes_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE plan_goals SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) WHERE id = OLD.goal_id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.goal_id IS DISTINCT FROM NEW.goal_id THEN
        UPDATE plan_goals SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.goal_id;
    END IF;
    UPDATE plan_goals SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.goal_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER goal_progress_notes_bump AFTER INSERT OR UPDATE OR DELETE ON goal_progress_notes FOR EACH ROW EXECUTE FUNCTION iop_goal_progress_notes_bump();
CREATE FUNCTION iop_relapse_plan_items_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE relapse_prevention_plans SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) WHERE id = OLD.relapse_plan_id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.relapse_plan_id IS DISTINCT FROM NEW.relapse_plan_id THEN
        UPDATE relapse_prevention_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.relapse_plan_id;
    END IF;
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.relapse_plan_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER relapse_plan_items_bump AFTER INSERT OR UPDATE OR DELETE ON relapse_plan_items FOR EACH ROW EXECUTE FUNCTION iop_relapse_plan_items_bump();
CREATE FUNCTION iop_session_participants_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE sessions SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) WHERE id = OLD.session_id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.session_id IS DISTINCT FROM NEW.session_id THEN
        UPDATE sessions SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.session_id;
    END IF;
    UPDATE sessions SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.session_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER session_participants_bump AFTER INSERT OR UPDATE OR DELETE ON session_participants FOR EACH ROW EXECUTE FUNCTION iop_session_participants_bump();
CREATE FUNCTION iop_treatment_plans_bump_relapse_prevention_plans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE plan_id = NEW.id;
    RETURN NEW;
END
$$;
CREATE TRIGGER treatment_plans_bump_relapse_prevention_plans AFTER UPDATE OF status, enrollment_id ON treatment_plans FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.enrollment_id IS DISTINCT FROM NEW.enrollment_id) EXECUTE FUNCTION iop_treatment_plans_bump_relapse_prevention_plans();
CREATE FUNCTION iop_support_contacts_bump_relapse_prevention_plans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id IN (SELECT relapse_plan_id FROM relapse_plan_items WHERE support_contact_id = NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER support_contacts_bump_relapse_prevention_plans AFTER UPDATE OF given_name, family_name ON support_contacts FOR EACH ROW
    WHEN (OLD.given_name IS DISTINCT FROM NEW.given_name OR OLD.family_name IS DISTINCT FROM NEW.family_name) EXECUTE FUNCTION iop_support_contacts_bump_relapse_prevention_plans();
CREATE FUNCTION iop_plan_reviews_bump_plan_goals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE plan_goals SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id IN (SELECT goal_id FROM goal_progress_notes WHERE review_id = NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER plan_reviews_bump_plan_goals AFTER UPDATE OF reviewed_on ON plan_reviews FOR EACH ROW
    WHEN (OLD.reviewed_on IS DISTINCT FROM NEW.reviewed_on) EXECUTE FUNCTION iop_plan_reviews_bump_plan_goals();
CREATE FUNCTION iop_programs_bump_enrollments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE enrollments SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE program_id = NEW.id;
    RETURN NEW;
END
$$;
CREATE TRIGGER programs_bump_enrollments AFTER UPDATE OF name, code ON programs FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.code IS DISTINCT FROM NEW.code) EXECUTE FUNCTION iop_programs_bump_enrollments();
-- Bumps every resource about a client (their labels may have changed).
CREATE FUNCTION iop_relabel(client TEXT, at TEXT, skip_enrollment TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE id = client;
    UPDATE support_contacts SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE client_id = client;
    UPDATE consents SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE client_id = client;
    UPDATE referrals SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE client_id = client;
    UPDATE enrollments SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE client_id = client AND id IS DISTINCT FROM skip_enrollment;
    UPDATE sessions SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = client);
    UPDATE treatment_plans SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = client);
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE plan_id IN (SELECT id FROM treatment_plans WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = client));
    UPDATE plan_goals SET version = version + 1, updated_at = GREATEST(updated_at, at) WHERE plan_id IN (SELECT id FROM treatment_plans WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = client));
END
$$;
-- The clients whose labels may have changed; the trigger below bumps their resources and empties it.
-- skip_enrollment: the enrollment whose own change this is (its own write gives it its version).
CREATE TABLE label_changes (client_id TEXT NOT NULL, at TEXT NOT NULL, skip_enrollment TEXT);
CREATE FUNCTION iop_label_changes_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM iop_relabel(NEW.client_id, NEW.at, NEW.skip_enrollment);
    DELETE FROM label_changes WHERE client_id = NEW.client_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER label_changes_apply AFTER INSERT ON label_changes FOR EACH ROW EXECUTE FUNCTION iop_label_changes_apply();
CREATE FUNCTION iop_enrollments_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF (SELECT part2 FROM programs WHERE id = OLD.program_id) = 1 AND NOT EXISTS (SELECT 1 FROM enrollments e JOIN programs p ON p.id = e.program_id WHERE e.client_id = OLD.client_id AND e.id <> OLD.id AND p.part2 = 1) THEN
            INSERT INTO label_changes VALUES (OLD.client_id, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), OLD.id);
        END IF;
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' AND (SELECT part2 FROM programs WHERE id = NEW.program_id) = 1 AND NOT EXISTS (SELECT 1 FROM enrollments e JOIN programs p ON p.id = e.program_id WHERE e.client_id = NEW.client_id AND e.id <> NEW.id AND p.part2 = 1) THEN
        INSERT INTO label_changes VALUES (NEW.client_id, NEW.updated_at, NEW.id);
    END IF;
    IF TG_OP = 'UPDATE' AND (SELECT part2 FROM programs WHERE id = OLD.program_id) IS DISTINCT FROM (SELECT part2 FROM programs WHERE id = NEW.program_id) THEN
        INSERT INTO label_changes VALUES (NEW.client_id, NEW.updated_at, NEW.id);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER enrollments_labels AFTER INSERT OR DELETE OR UPDATE OF program_id ON enrollments FOR EACH ROW EXECUTE FUNCTION iop_enrollments_labels();
CREATE FUNCTION iop_programs_labels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO label_changes SELECT DISTINCT client_id, NEW.updated_at, NULL FROM enrollments WHERE program_id = NEW.id;
    RETURN NEW;
END
$$;
CREATE TRIGGER programs_labels AFTER UPDATE OF part2 ON programs FOR EACH ROW
    WHEN (OLD.part2 IS DISTINCT FROM NEW.part2) EXECUTE FUNCTION iop_programs_labels();
-- History reads the log by table and by row, newest first.
CREATE INDEX change_log_row_idx ON change_log (table_name, row_id, seq);
CREATE INDEX change_log_table_idx ON change_log (table_name, seq);
