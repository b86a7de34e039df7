"""The end of `bulk apply --dry-run` on the terminal: what would change, at a glance."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from bulk.ledger_views.html_report.facts import duplicates, open_readonly, status_counts
from bulk.ledger_views.names import name_sql, shown_name

#: A value longer than this is cut on the terminal (the export and report have it whole).
SHOWN = 60


def plan_news(counts: dict[str, int], repeated: int) -> str:
    """The dry run's news first: what would change, and every kind of row that would not
    go as planned (the same words on the terminal and in the report)."""
    would, same = counts.get("ok", 0), counts.get("unchanged", 0)
    news = [f"{would:,} row{'s' if would != 1 else ''} would change, {same:,} already match"]
    bad = [f"{counts[name]:,} {name}" for name in ("failed", "invalid", "conflict")
           if counts.get(name)]
    if bad:
        news.append("; ".join(bad))
    if repeated:
        news.append(f"{repeated:,} record{'s' if repeated != 1 else ''} named by several rows "
                    "(applied one after another, in file order)")
    return " · ".join(news)


def preview_lines(ledger: str | Path, first: int = 5) -> list[str]:
    """The news (would change, failed, invalid, conflict, repeated records), per field how
    many rows would change it, then the first changes, one a line:
    `id  field: "old" → "new"`."""
    db = open_readonly(ledger)
    quoted = shlex.quote(str(ledger))
    try:
        counts = status_counts(db)
        repeated, repeated_count = duplicates(db)
        lines = [f"plan: {plan_news(counts, repeated_count)}"]
        for record_id, rows, first_rows in repeated[:3]:
            more = ", …" if rows > len(first_rows) else ""
            lines.append(f"  {record_id} is named by {rows} rows: "
                         f"{', '.join(map(str, first_rows))}{more}")
        if any(counts.get(name) for name in ("failed", "invalid", "conflict")):
            lines.append(f"  why, and what to do: bulk status {quoted} "
                         f"(or bulk report {quoted})")
        fields = db.execute(
            "SELECT j.key, COUNT(*) FROM rows, json_each(rows.after) AS j "
            "WHERE rows.status = 'ok' GROUP BY j.key ORDER BY COUNT(*) DESC, j.key").fetchall()
        if not fields:
            return [*lines, "plan: no row would change anything"]
        width = max(len(name) for name, _count in fields)
        lines.append("rows that would change each field:")
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
    lines.append(f"every change: bulk export {quoted} --status ok (or bulk report {quoted})")
    return lines


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[:SHOWN - 1] + "…"
