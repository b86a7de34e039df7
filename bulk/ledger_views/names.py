"""A record's name beside its id, wherever a ledger is shown to a person.

The ledger keeps the name the row's read saw (`rows.record_name`); ledgers written before
it was kept lack the column, and every view then shows the id alone.
"""

from __future__ import annotations

import json
import sqlite3

#: A name longer than this is cut on the terminal (the report shows more).
SHOWN_NAME = 40


def name_sql(db: sqlite3.Connection) -> str:
    """The SQL for a row's name: its column, or NULL in a ledger from before it."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(rows)")}
    return "record_name" if "record_name" in columns else "NULL"


def shown_name(name: str | None, limit: int = SHOWN_NAME) -> str:
    """The name quoted for a terminal (control characters escaped, so a name cannot move
    the cursor or colour the screen), cut to `limit`; "" when there is none."""
    if not name:
        return ""
    if len(name) > limit:
        name = name[:limit - 1] + "…"
    return json.dumps(name, ensure_ascii=False)
