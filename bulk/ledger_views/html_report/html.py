"""`bulk report`: one self-contained HTML file a person opens in a browser.

Styles, the chart library (uPlot, vendored, MIT), the chart's data and its script are
all inlined: opening the file makes no request to any host. Every value from the ledger
is escaped; the chart data is JSON in a non-executed script element.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from bulk.ledger_views.history import History, duration, utc
from bulk.ledger_views.html_report.causes import cause_lines
from bulk.ledger_views.html_report.facts import Facts, gather
from bulk.ledger_views.html_report.preview import plan_news

HERE = Path(__file__).resolve().parent
#: Before → after values longer than this are cut in the page (the export has them whole).
SHOWN_VALUE = 160


def write_report(ledger: str | Path, output: str | Path) -> Facts:
    """Gather the ledger's facts and write the report; returns the facts shown."""
    facts = gather(ledger)
    Path(output).write_text(render(facts), encoding="utf-8")
    return facts


def render(facts: Facts) -> str:
    parts = {
        "title": escape(_title(facts)),
        "subtitle": escape(_subtitle(facts)),
        "css": _asset("report.css"),
        "uplot_css": _asset("vendor/uPlot.min.css"),
        "uplot_js": _asset("vendor/uPlot.iife.min.js"),
        "chart_js": _asset("chart.js"),
        "chart_data": _chart_data(facts),
        "body": "\n".join(_sections(facts)),
    }
    page = _asset("template.html")
    for key, value in parts.items():
        page = page.replace("{{" + key + "}}", value)
    return page


def _asset(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def _title(facts: Facts) -> str:
    kind = "Dry run (nothing written)" if facts.dry_run else "Bulk update"
    name = Path(facts.meta.get("input") or facts.ledger).name
    return f"{kind}: {name}"


def _subtitle(facts: Facts) -> str:
    outcome = facts.meta.get("outcome") or "?"
    target = facts.fingerprint.get("target", "?")
    history = facts.history
    first = history.first_start or facts.meta.get("started_at")
    end = history.last_end if history.runs else facts.meta.get("finished_at")
    resumed = history.resumes
    told = (f" · stopped and resumed {resumed} time{'s' if resumed != 1 else ''}"
            if resumed else "")
    return (f"{facts.total:,} rows of {target} · {outcome} · "
            f"{_when(first)} → {_when(end)}{told}")


def _when(stamp: str | None) -> str:
    return utc(stamp)


def _sections(facts: Facts) -> list[str]:
    if facts.dry_run:  # a plan leads with what would happen, then the figures behind it
        return [_plan(facts), _counts(facts), _errors(facts), _job(facts), _throughput(facts)]
    return [_job(facts), _counts(facts), _throughput(facts), _errors(facts), _changes(facts)]


def _section(ident: str, title: str, *body: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>\n' + "\n".join(body) + "</section>"


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    cls = lambda i: ' class="n"' if i in numeric else ""  # noqa: E731
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f"<th{cls(i)}>{escape(name)}</th>" for i, name in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in rows:  # cells are HTML already (escaped by the caller)
        out.append("<tr>" + "".join(f"<td{cls(i)}>{cell}</td>" for i, cell in enumerate(row))
                   + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _job(facts: Facts) -> str:
    meta, fp = facts.meta, facts.fingerprint
    options = ", ".join(key if value is True else f"{key} {value}"
                        for key, value in facts.options.items()
                        if value not in (None, False)) or "-"
    rows = [
        ["input", f'<span class="mono">{escape(meta.get("input", "?"))}</span>'],
        ["target", escape(str(fp.get("target", "?")))],
        ["org", f'<span class="mono">{escape(str(fp.get("org", "?")))}</span>'],
        ["API", f'<span class="mono">{escape(meta.get("base_url", "?"))}</span>'],
        ["fingerprint", f'<span class="mono">input sha256 '
                        f'{escape(str(fp.get("input_sha256", "?")))}</span>'],
        ["options", escape(options)],
        ["started", escape(_when(facts.history.first_start or meta.get("started_at")))],
        ["ended", escape(_when(meta.get("finished_at")) if meta.get("finished_at")
                         else "- (running now, or stopped by a crash)")],
        ["how it ended", escape(meta.get("outcome") or "?")],
    ]
    history = facts.history
    if history.last_end:
        rows.append(["time", escape(f"{duration(history.total_seconds)} in all, "
                                    f"{duration(history.active_seconds)} running")])
    rows.append(["ledger", f'<span class="mono">{escape(facts.ledger)}</span>'])
    body = [_table(["", ""], [[f"<b>{k}</b>", v] for k, v in rows])]
    if len(history.runs) > 1 or history.stops:
        body.append(_runs(history))
    return _section("job", "The job", *body)


def _runs(history: History) -> str:
    """Each run: when it started (the first start, then each resume), how it stopped."""
    rows = []
    for number, run in enumerate(history.runs, 1):
        how = run.how or ("running now, or stopped by a crash" if run.ended_at is None else "?")
        words = escape(how) + (f": {escape(run.detail)}" if run.detail else "")
        if run.next_step and number == len(history.runs):
            words += f' <span class="muted">(to finish: {escape(run.next_step)})</span>'
        rows.append([escape("first start" if number == 1 else "resumed"),
                     escape(_when(run.started_at)), escape(_when(run.ended_at)),
                     escape(duration(run.seconds)) if run.ended_at else "-", words])
    return ('<h3 id="runs">Runs: each start, stop and resume</h3>'
            + _table(["", "started", "stopped", "ran", "how it stopped"], rows, {3}))


def _counts(facts: Facts) -> str:
    tiles = ['<div class="tiles">']
    for status, count in facts.counts.items():
        # A plan's `ok` rows were not changed: they would be.
        label = "would change" if facts.dry_run and status == "ok" else status
        tiles.append(f'<div class="tile {escape(status)}" data-status="{escape(status)}" '
                     f'data-count="{count}">'
                     f'<b>{count:,}</b><span>{escape(label)}</span></div>')
    left = facts.total - facts.recorded
    if left > 0:
        tiles.append(f'<div class="tile" data-status="not yet" data-count="{left}"><b>{left:,}</b>'
                     "<span>not yet recorded</span></div>")
    tiles.append("</div>")
    retried = (f"; {facts.retried:,} took more than one attempt ({facts.attempts:,} attempts "
               "in all)" if facts.retried else "")
    note = (f'<p class="muted">{facts.total:,} rows in the input, {facts.recorded:,} '
            f"recorded in the ledger{retried}.</p>")
    what = "would change" if facts.dry_run else "changed"
    top = max((count for _name, count in facts.fields), default=1)
    rows = [[f'<span class="mono">{escape(name)}</span>', f"{count:,}",
             f'<div class="bar" style="width:{max(1, round(300 * count / top))}px"></div>']
            for name, count in facts.fields]
    fields = (_table(["field", f"rows that {what} it", ""], rows, {1}) if rows
              else f'<p class="muted">No row {what} a field.</p>')
    return _section("counts", "Rows by status", *tiles, note,
                    f'<h3 id="fields">By field ({what})</h3>', fields)


def _throughput(facts: Facts) -> str:
    tp = facts.throughput
    finished = sum(count * tp.width for count in tp.done)
    peak = max(tp.done, default=0.0)
    span = len(tp.seconds) * tp.width
    # The average over the time the job ran (stops left out), else over the chart.
    # Never below one bucket: the peak is per bucket, and a job shorter than one would
    # show an average above its peak.
    running = max(facts.history.active_seconds, tp.width) if facts.history.active_seconds \
        else span
    average = finished / running if running else 0.0
    summary = [f"{round(finished):,} rows finished over about {span:,} s "
               f"(buckets of {tp.width} s), average {average:,.1f} rows/s"
               f"{' while running' if facts.history.active_seconds else ''}, "
               f"peak {peak:,.1f} rows/s"]
    stops = facts.history.stops
    if stops:
        summary.append(f"{len(stops)} stop{'s' if len(stops) != 1 else ''} "
                       f"({', '.join(run.how or '?' for run in stops)})")
    for kind, (count, held) in sorted(facts.events.items()):
        label = {"429": "429 answer", "pause": "pause", "outage": "outage"}.get(kind, kind)
        label += "s" if count != 1 and kind in ("429", "pause", "outage") else ""
        summary.append(f"{count:,} {label}" + (f", {held:,.1f} s held back" if held else ""))
    legend = ('<p class="muted"><span class="legend-key" style="background:rgba(230,140,0,.35)">'
              '</span>pause (every worker waits out a 429\'s Retry-After)'
              '<span class="legend-key" style="background:rgba(90,90,90,.4)"></span>outage'
              '<span class="legend-key" style="background:#8e24aa"></span>429 answers'
              '<span class="legend-key stop-key"></span>a stop (and where the job resumed)</p>')
    noscript = ('<noscript><p class="banner">The chart needs JavaScript, which is off: the '
                "figures above and the tables below have it all.</p></noscript>")
    return _section("throughput", "Throughput over time",
                    f"<p>{escape(' · '.join(summary))}</p>", noscript,
                    '<div id="chart"></div>', legend)


def _errors(facts: Facts) -> str:
    causes = facts.causes
    if not causes.groups:
        return _section("errors", "Errors by cause", '<p class="muted">No errors.</p>')
    body = [f"<p>{causes.total_rows:,} rows in {causes.total_groups:,} "
            f"cause{'s' if causes.total_groups != 1 else ''}"
            + (f" (the {len(causes.groups)} largest shown)"
               if causes.total_groups > len(causes.groups) else "") + ".</p>"]
    for cause in causes.groups:
        rows = [[str(row), _record(record_id, cause.names.get(row)), escape(error or "")]
                for row, record_id, error in cause.first_rows]
        commands = cause.next_commands(facts.ledger, facts.fingerprint.get("target"))
        body.append(
            f'<div class="cause" data-key="{cause.key}" data-count="{cause.count}">'
            f"<h3>{cause.count:,} × {escape(cause.status)}: {escape(cause.shown)}</h3>"
            + _table(["row", "record", "message"], rows)
            + f'<p class="todo"><b>What to do:</b> {escape(cause.advice)}.</p>'
            + "<p>Just these rows: "
            + (", then, once the rows in it are fixed, " if cause.fix_first else ", then ")
            .join(f'<code class="cmd">{escape(command)}</code>' for command in commands)
            + "</p></div>")
    return _section("errors", "Errors by cause", *body)


def _record(record_id: str | None, name: str | None) -> str:
    """A record's id, and its name beside it when the ledger has one."""
    shown = f'<span class="mono">{escape(record_id or "-")}</span>'
    if name:
        shown += f' <span class="record-name">{escape(_value(name))}</span>'
    return shown


def _value(text: str | None) -> str:
    if text is None:
        return "(absent)"
    return text if len(text) <= SHOWN_VALUE else text[:SHOWN_VALUE - 1] + "…"


def _change_tables(facts: Facts) -> list[str]:
    out = []
    for name, count in facts.fields:
        rows = [[str(change.row), _record(change.record_id, change.name),
                 f'<span class="mono before">{escape(_value(change.before))}</span> → '
                 f'<span class="mono after">{escape(_value(change.after))}</span>']
                for change in facts.samples.get(name, [])]
        out.append(f'<h3 class="field-sample">{escape(name)} '
                   f'<span class="muted">({count:,} rows; the first {len(rows)})</span></h3>')
        out.append(_table(["row", "record", "before → after"], rows))
    return out


def _changes(facts: Facts) -> str:
    body = _change_tables(facts) or ['<p class="muted">Nothing was changed.</p>']
    export = f"bulk export {shlex.quote(facts.ledger)} --status ok"
    body.append(f'<p>Every change: <code class="cmd">{escape(export)}</code></p>')
    return _section("changes", "A sample of the changes, field by field", *body)


def _plan(facts: Facts) -> str:
    news = plan_news(facts.counts, facts.duplicate_ids)
    body = ['<p class="banner">A dry run: every record was read and every row planned; '
            f"nothing was written. <b>{escape(news)}</b>.</p>"]
    if any(facts.counts.get(name) for name in ("failed", "invalid", "conflict")):
        body.append('<p>Why some rows would not go as planned, and what to do: '
                    '<a href="#errors">errors by cause</a>.</p>')
    rows = [[f'<span class="mono">{escape(name)}</span>', f"{count:,}"]
            for name, count in facts.fields]
    body.append(_table(["field", "rows that would change it"], rows, {1}) if rows
                else '<p class="muted">No row would change anything.</p>')
    body.append('<h3 id="conflicts">Conflicts</h3>')
    conflicts = []
    if facts.counts.get("conflict"):
        conflicts.append(f"<p>{facts.counts['conflict']:,} rows in conflict with a change "
                         "made since they were read.</p>")
    if facts.duplicate_ids:
        many = facts.duplicate_ids != 1
        conflicts.append(f"<p>{facts.duplicate_ids:,} record{'s are' if many else ' is'} named "
                         "by more than one row (they apply one after another, in file order; "
                         "a dry run plans each on what the rows before it would write):</p>")
        conflicts.append(_table(["record", "rows", "first rows"], [
            [f'<span class="mono">{escape(rid)}</span>', f"{n:,}",
             ", ".join(map(str, first))] for rid, n, first in facts.duplicates], {1}))
    body += conflicts or ['<p class="muted">None: no record is named by two rows.</p>']
    body.append("<h3>A sample of the plan</h3>")
    body += _change_tables(facts)
    return _section("plan", "The plan", *body)


def _chart_data(facts: Facts) -> str:
    tp = facts.throughput
    start = 0.0
    if tp.start:
        start = datetime.fromisoformat(tp.start.replace("Z", "+00:00")).timestamp()
    data: dict[str, Any] = {
        "start": start, "width": tp.width, "seconds": tp.seconds,
        "done": [round(v, 3) for v in tp.done], "errors": [round(v, 3) for v in tp.errors],
        "hits_429": tp.hits_429, "bands": tp.bands,
        # Each run, from the chart's start: [start, end or null, how it stopped].
        "runs": [[_offset(run.started_at, start), _offset(run.ended_at, start), run.how]
                 for run in facts.history.runs],
    }
    # "</" cannot end the script element early, whatever a value holds.
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def _offset(stamp: str | None, start: float) -> float | None:
    if not stamp or not start:
        return None
    try:
        return round(datetime.fromisoformat(stamp).timestamp() - start, 3)
    except ValueError:
        return None


def status_cause_lines(facts: Facts) -> list[str]:
    """The same groups as `bulk status` prints (for tests and for the demo)."""
    return cause_lines(facts.causes, facts.ledger)
