-- The rows of what belongs to one client are read together in owner order (client, enrollment
-- or plan, then id: `Store::page_in_owner_order`), because ids do not group them: a client's
-- rows get ids as they are written, among everyone else's. An export's consent decisions are
-- per client, so in id order nearly every page named new clients. These indexes serve that
-- order and its keyset `(owner, id) > (...)`, and still serve lookups by owner alone, so they
-- replace the one-column indexes.
DROP INDEX support_contacts_client_id_idx;
CREATE INDEX support_contacts_owner_idx ON support_contacts (client_id, id);
DROP INDEX referrals_client_id_idx;
CREATE INDEX referrals_owner_idx ON referrals (client_id, id);
DROP INDEX enrollments_client_id_idx;
CREATE INDEX enrollments_owner_idx ON enrollments (client_id, id);
DROP INDEX treatment_plans_enrollment_id_idx;
CREATE INDEX treatment_plans_owner_idx ON treatment_plans (enrollment_id, id);
DROP INDEX plan_goals_plan_id_idx;
CREATE INDEX plan_goals_owner_idx ON plan_goals (plan_id, id);
DROP INDEX consents_client_id_idx;
CREATE INDEX consents_owner_idx ON consents (client_id, id);
DROP INDEX sessions_enrollment_id_idx;
CREATE INDEX sessions_owner_idx ON sessions (enrollment_id, id);
