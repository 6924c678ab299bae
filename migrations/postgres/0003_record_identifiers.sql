-- Identifiers other systems know a clinic record by (an EHR's own MRN, its id for a support
-- contact, ...), kept as they came in, so that a retried or conditional write from that system
-- finds the record it made. One record per identifier per table: the primary key settles racing
-- conditional writes. Written with the record, in the same transaction (the record's own row is
-- updated then too, so its version changes). Identical on both backends.
CREATE TABLE record_identifiers (
    table_name TEXT NOT NULL,
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (table_name, system, value)
);
CREATE INDEX record_identifiers_record_idx ON record_identifiers (table_name, record_id);
