#!/usr/bin/env python3
"""Write sql/schema.mysql.sql and sql/schema.postgresql.sql: the DDL the revisions of
sql/migrations/ produce (Alembic's offline mode), for people who apply SQL by hand.

Run it after adding a revision: `python sql/render_schema.py`. tests/test_schema.py fails
while a file differs from what it would write.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.migrations import DIALECTS, render_schema  # noqa: E402

if __name__ == "__main__":
    for dialect in DIALECTS:
        target = Path(__file__).resolve().parent / f"schema.{dialect}.sql"
        target.write_text(render_schema(dialect))
        print(f"wrote {target}")
