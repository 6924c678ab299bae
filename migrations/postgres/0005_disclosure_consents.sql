-- The consents that allowed a disclosure (JSON array of Consent ids), for the accounting of
-- disclosures (42 CFR Part 2 §2.24, §2.25): which consent let each disclosure through.
ALTER TABLE audit_events ADD COLUMN consents TEXT NOT NULL DEFAULT '[]';
