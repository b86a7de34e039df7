"""The end of `bulk apply --dry-run` on the terminal: what would change, at a glance."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from bulk.ledger_views.html_report.facts import open_readonly
from bulk.ledger_views.names import name_sql, shown_name

#: A value longer than this is cut on the terminal (the export and report have it whole).
SHOWN = 60


def preview_lines(ledger: str | Path, first: int = 5) -> list[str]:
    """Per field, how many rows would change it; then the first changes, one a line:
    `id  field: "old" → "new"`."""
    db = open_readonly(ledger)
    try:
        fields = db.execute(
            "SELECT j.key, COUNT(*) FROM rows, json_each(rows.after) AS j "
            "WHERE rows.status = 'ok' GROUP BY j.key ORDER BY COUNT(*) DESC, j.key").fetchall()
        if not fields:
            return ["plan: no row would change anything"]
        width = max(len(name) for name, _count in fields)
        lines = ["plan: rows that would change each field"]
        lines += [f"  {name:<{width}}  {count}" for name, count in fields]
        lines.append("first changes:")
        shown = 0
        # Rows in input order, each with its fields; stops after `first` lines.
        for record_id, record_name, before, after in db.execute(
                f"SELECT record_id, {name_sql(db)}, before, after FROM rows "
                "WHERE status = 'ok' AND after IS NOT NULL ORDER BY row"):
            record = " ".join(filter(None, (record_id, shown_name(record_name))))
            old, new = json.loads(before or "{}"), json.loads(after)
            for name in sorted(new):
                if shown == first:
                    break
                lines.append(f"  {record}  {name}: {_shown(old.get(name))} → "
                             f"{_shown(new[name])}")
                shown += 1
            if shown == first:
                break
    finally:
        db.close()
    lines.append(f"every change: bulk export {shlex.quote(str(ledger))} --status ok "
                 f"(or bulk report {shlex.quote(str(ledger))})")
    return lines


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[:SHOWN - 1] + "…"
