-- A FHIR resource's version is its main row's version, so every row that a resource shows beside
-- its main row bumps that main row (version + 1, updated_at, and so a change_log entry) in the same
-- transaction: a new review changes its CarePlan's version and ETag, an attendance change its
-- Encounter's, a Part 2 enrollment the security labels of every resource about the client. Done by
-- triggers, like the change log, so writers that bypass the gateway bump versions too.
-- What each resource shows is in src/assemble.rs; keep the two in step (tests/resource_versions.rs).

CREATE TRIGGER plan_goals_bump_insert AFTER INSERT ON plan_goals BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id = NEW.plan_id;
END;
CREATE TRIGGER plan_goals_bump_update AFTER UPDATE ON plan_goals BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (NEW.plan_id, OLD.plan_id);
END;
CREATE TRIGGER plan_goals_bump_delete AFTER DELETE ON plan_goals BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z') WHERE id = OLD.plan_id;
END;
CREATE TRIGGER plan_interventions_bump_insert AFTER INSERT ON plan_interventions BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id = NEW.plan_id;
END;
CREATE TRIGGER plan_interventions_bump_update AFTER UPDATE ON plan_interventions BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (NEW.plan_id, OLD.plan_id);
END;
CREATE TRIGGER plan_interventions_bump_delete AFTER DELETE ON plan_interventions BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z') WHERE id = OLD.plan_id;
END;
CREATE TRIGGER plan_reviews_bump_insert AFTER INSERT ON plan_reviews BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id = NEW.plan_id;
END;
CREATE TRIGGER plan_reviews_bump_update AFTER UPDATE ON plan_reviews BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (NEW.plan_id, OLD.plan_id);
END;
CREATE TRIGGER plan_reviews_bump_delete AFTER DELETE ON plan_reviews BEGIN
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z') WHERE id = OLD.plan_id;
END;
CREATE TRIGGER goal_progress_notes_bump_insert AFTER INSERT ON goal_progress_notes BEGIN
    UPDATE plan_goals SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id = NEW.goal_id;
END;
CREATE TRIGGER goal_progress_notes_bump_update AFTER UPDATE ON goal_progress_notes BEGIN
    UPDATE plan_goals SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (NEW.goal_id, OLD.goal_id);
END;
CREATE TRIGGER goal_progress_notes_bump_delete AFTER DELETE ON goal_progress_notes BEGIN
    UPDATE plan_goals SET version = version + 1, updated_at = max(updated_at, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z') WHERE id = OLD.goal_id;
END;
CREATE TRIGGER relapse_plan_items_bump_insert AFTER INSERT ON relapse_plan_items BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id = NEW.relapse_plan_id;
END;
CREATE TRIGGER relapse_plan_items_bump_update AFTER UPDATE ON relapse_plan_items BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (NEW.relapse_plan_id, OLD.relapse_plan_id);
END;
CREATE TRIGGER relapse_plan_items_bump_delete AFTER DELETE ON relapse_plan_items BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = max(updated_at, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z') WHERE id = OLD.relapse_plan_id;
END;
CREATE TRIGGER session_participants_bump_insert AFTER INSERT ON session_participants BEGIN
    UPDATE sessions SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id = NEW.session_id;
END;
CREATE TRIGGER session_participants_bump_update AFTER UPDATE ON session_participants BEGIN
    UPDATE sessions SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (NEW.session_id, OLD.session_id);
END;
CREATE TRIGGER session_participants_bump_delete AFTER DELETE ON session_participants BEGIN
    UPDATE sessions SET version = version + 1, updated_at = max(updated_at, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z') WHERE id = OLD.session_id;
END;
CREATE TRIGGER treatment_plans_bump_relapse_prevention_plans AFTER UPDATE OF status, enrollment_id ON treatment_plans
WHEN OLD.status IS NOT NEW.status OR OLD.enrollment_id IS NOT NEW.enrollment_id BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE plan_id = NEW.id;
END;
CREATE TRIGGER support_contacts_bump_relapse_prevention_plans AFTER UPDATE OF given_name, family_name ON support_contacts
WHEN OLD.given_name IS NOT NEW.given_name OR OLD.family_name IS NOT NEW.family_name BEGIN
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (SELECT relapse_plan_id FROM relapse_plan_items WHERE support_contact_id = NEW.id);
END;
CREATE TRIGGER plan_reviews_bump_plan_goals AFTER UPDATE OF reviewed_on ON plan_reviews
WHEN OLD.reviewed_on IS NOT NEW.reviewed_on BEGIN
    UPDATE plan_goals SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE id IN (SELECT goal_id FROM goal_progress_notes WHERE review_id = NEW.id);
END;
CREATE TRIGGER programs_bump_enrollments AFTER UPDATE OF name, code ON programs
WHEN OLD.name IS NOT NEW.name OR OLD.code IS NOT NEW.code BEGIN
    UPDATE enrollments SET version = version + 1, updated_at = max(updated_at, NEW.updated_at) WHERE program_id = NEW.id;
END;
-- The clients whose labels may have changed; the trigger below bumps their resources and empties it.
-- skip_enrollment: the enrollment whose own change this is (its own write gives it its version).
CREATE TABLE label_changes (client_id TEXT NOT NULL, at TEXT NOT NULL, skip_enrollment TEXT);
CREATE TRIGGER label_changes_apply AFTER INSERT ON label_changes BEGIN
    UPDATE clients SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE id = NEW.client_id;
    UPDATE support_contacts SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE client_id = NEW.client_id;
    UPDATE consents SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE client_id = NEW.client_id;
    UPDATE referrals SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE client_id = NEW.client_id;
    UPDATE enrollments SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE client_id = NEW.client_id AND id IS NOT NEW.skip_enrollment;
    UPDATE sessions SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = NEW.client_id);
    UPDATE treatment_plans SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = NEW.client_id);
    UPDATE relapse_prevention_plans SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE plan_id IN (SELECT id FROM treatment_plans WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = NEW.client_id));
    UPDATE plan_goals SET version = version + 1, updated_at = max(updated_at, NEW.at) WHERE plan_id IN (SELECT id FROM treatment_plans WHERE enrollment_id IN (SELECT id FROM enrollments WHERE client_id = NEW.client_id));
    DELETE FROM label_changes WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER enrollments_labels_insert AFTER INSERT ON enrollments
WHEN (SELECT part2 FROM programs WHERE id = NEW.program_id) = 1 AND NOT EXISTS (SELECT 1 FROM enrollments e JOIN programs p ON p.id = e.program_id WHERE e.client_id = NEW.client_id AND e.id <> NEW.id AND p.part2 = 1) BEGIN
    INSERT INTO label_changes VALUES (NEW.client_id, NEW.updated_at, NEW.id);
END;
CREATE TRIGGER enrollments_labels_delete AFTER DELETE ON enrollments
WHEN (SELECT part2 FROM programs WHERE id = OLD.program_id) = 1 AND NOT EXISTS (SELECT 1 FROM enrollments e JOIN programs p ON p.id = e.program_id WHERE e.client_id = OLD.client_id AND e.id <> OLD.id AND p.part2 = 1) BEGIN
    INSERT INTO label_changes VALUES (OLD.client_id, strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z', OLD.id);
END;
CREATE TRIGGER enrollments_labels_update AFTER UPDATE OF program_id ON enrollments
WHEN (SELECT part2 FROM programs WHERE id = OLD.program_id) IS NOT (SELECT part2 FROM programs WHERE id = NEW.program_id) BEGIN
    INSERT INTO label_changes VALUES (NEW.client_id, NEW.updated_at, NEW.id);
END;
CREATE TRIGGER programs_labels AFTER UPDATE OF part2 ON programs
WHEN OLD.part2 IS NOT NEW.part2 BEGIN
    INSERT INTO label_changes SELECT DISTINCT client_id, NEW.updated_at, NULL FROM enrollments WHERE program_id = NEW.id;
END;
-- History reads the log by table and by row, newest first.
CREATE INDEX change_log_row_idx ON change_log (table_name, row_id, seq);
CREATE INDEX change_log_table_idx ON change_log (table_name, seq);
