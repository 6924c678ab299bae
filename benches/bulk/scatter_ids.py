#!/usr/bin/env python3
"""Gives a seeded SQLite clinic's sessions random ids, as real data has them.

`seed` makes ids that group each client's rows together in id order (the client's number leads
every id), so an export that pages in id order meets one client at a time. Real ids are UUIDv7
in the order records were written, so a client's sessions lie among everyone else's. This
rewrites `sessions.id` (and `session_participants.session_id` and the sessions' external
identifiers) with random UUIDs so that an export can be measured on data ordered as a real
clinic's is (docs/benchmarks.md). The change log keeps the old ids (and gains a row per session
from its update trigger): the result is for measuring exports, not for serving histories.

    python3 benches/bulk/scatter_ids.py CLINIC.db       # in place; copy the file first
"""
import random
import sqlite3
import sys
import uuid


def main(path: str) -> None:
    rng = random.Random(7)
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys = OFF")
    ids = [row[0] for row in db.execute("SELECT id FROM sessions")]
    db.execute("CREATE TEMP TABLE new_ids (old TEXT PRIMARY KEY, new TEXT NOT NULL)")
    db.executemany(
        "INSERT INTO new_ids VALUES (?, ?)",
        ((old, str(uuid.UUID(int=rng.getrandbits(128)))) for old in ids),
    )
    db.execute("UPDATE sessions SET id = (SELECT new FROM new_ids WHERE old = sessions.id)")
    db.execute(
        "UPDATE session_participants SET session_id = "
        "(SELECT new FROM new_ids WHERE old = session_participants.session_id)"
    )
    db.execute(
        "UPDATE record_identifiers SET record_id = "
        "(SELECT new FROM new_ids WHERE old = record_identifiers.record_id) "
        "WHERE table_name = 'sessions'"
    )
    db.commit()
    broken = db.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        sys.exit(f"foreign keys broken: {broken[:3]}")
    db.execute("VACUUM")
    print(f"{len(ids)} sessions given random ids")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
