-- The referral exchange (BSeR): why a referral was declined or cancelled, the messages received,
-- and a referral's Task following the enrollment it led to.

ALTER TABLE referrals ADD COLUMN status_reason TEXT;
-- outbound: the records sent along as the transition summary (kind:id, comma-separated)
ALTER TABLE referrals ADD COLUMN transition_summary TEXT NOT NULL DEFAULT '';

-- A target that stands for a provider the clinic steps clients down (or up) to: a push first
-- refers each client discharged that way since the target was added (step-down, step-up, both).
ALTER TABLE sync_targets ADD COLUMN send_transitions TEXT;

-- One row per referral received: a resend (same message identifier or same placer identifier)
-- finds it and adds nothing. Its id is the id of the referral it becomes.
CREATE TABLE referral_intakes (
    id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    message_key TEXT UNIQUE,
    placer_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('linked','new_client','review','matched')),
    referral_id TEXT REFERENCES referrals(id),
    -- the candidate clients (ids, comma-separated) while it waits for review
    candidates TEXT NOT NULL,
    message TEXT NOT NULL,
    -- where the referring side keeps its Task and ServiceRequest (absolute URLs), when the
    -- message says: the clinic's decisions are written back into that Task
    source_task TEXT,
    source_request TEXT,
    CHECK ((state = 'review') = (referral_id IS NULL))
);
CREATE INDEX referral_intakes_state_idx ON referral_intakes (state);
-- Patient matching looks clients up by birth date first.
CREATE INDEX clients_birth_date_idx ON clients (birth_date);

-- A referral's Task shows the enrollment it led to (started, sessions attended or missed,
-- discharged): those rows bump the referral, like the triggers of 0002.
CREATE INDEX enrollments_referral_id_idx ON enrollments (referral_id);
CREATE FUNCTION iop_enrollments_bump_referral() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.referral_id IS DISTINCT FROM NEW.referral_id AND OLD.referral_id IS NOT NULL THEN
        UPDATE referrals SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = OLD.referral_id;
    END IF;
    IF NEW.referral_id IS NOT NULL THEN
        UPDATE referrals SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at) WHERE id = NEW.referral_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER enrollments_bump_referral AFTER INSERT OR UPDATE ON enrollments FOR EACH ROW EXECUTE FUNCTION iop_enrollments_bump_referral();
CREATE FUNCTION iop_sessions_bump_referral() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE referrals SET version = version + 1, updated_at = GREATEST(updated_at, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        WHERE id = (SELECT referral_id FROM enrollments WHERE id = OLD.enrollment_id);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.attendance IS NOT DISTINCT FROM NEW.attendance
        AND OLD.scheduled_start IS NOT DISTINCT FROM NEW.scheduled_start
        AND OLD.enrollment_id IS NOT DISTINCT FROM NEW.enrollment_id THEN
        RETURN NEW;
    END IF;
    UPDATE referrals SET version = version + 1, updated_at = GREATEST(updated_at, NEW.updated_at)
    WHERE id IN (SELECT referral_id FROM enrollments WHERE id IN (NEW.enrollment_id, OLD.enrollment_id));
    RETURN NEW;
END
$$;
CREATE TRIGGER sessions_bump_referral AFTER INSERT OR UPDATE OR DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION iop_sessions_bump_referral();
