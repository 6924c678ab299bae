-- The patients an audit record is about arrive with the record (a JSON array of Patient ids)
-- and this trigger indexes them into audit_event_patients. A batch of audit records is then one
-- INSERT, atomic on its own: the group commit of reads and searches waits for one statement
-- instead of a transaction of four (BEGIN, two inserts, COMMIT), each a hop to the database.
ALTER TABLE audit_events ADD COLUMN patients TEXT;

CREATE TRIGGER audit_events_index_patients AFTER INSERT ON audit_events
WHEN NEW.patients IS NOT NULL
BEGIN
    INSERT INTO audit_event_patients (audit_id, patient_id)
    SELECT DISTINCT NEW.id, value FROM json_each(NEW.patients);
END;
