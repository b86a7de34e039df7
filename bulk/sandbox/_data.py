"""The organization a sandbox serves: generated from a seed, or read from a JSON file.

The file shape (``sample_data/org.json`` is one)::

    {"org_id": "<32 hex>", "token": "...",            # token optional
     "members": [{"id": 12345, "email": ..., ...}],   # integer user ids
     "groups": [{"id": "<32 hex>", "name": ..., "members": [12345]}],
     "checklists": [{...template record...}],
     "kickoff_fields": {"<checklist id>": [{"id", "timeline_id", "label", "field_type", ...}]},
     "runs": [{...run record...}],
     "task_assignees": {"<run id>": [12345]},         # optional: who has a task of a run
     "tasks": [{...task record, owners: {users, guests, groups}...}]}  # optional

Records are stored exactly as ``GET`` answers them. Generation is deterministic: the same
seed and counts give byte-identical JSON (:func:`dump_org`), and each part draws from its
own seed-derived stream, so asking for more runs does not change the members or templates.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bulk.sandbox._task_data import assignees_of, generate_tasks

HEX32 = re.compile(r"^[0-9a-f]{32}$")

_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Kemi", "Liam", "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara",
          "Umar", "Vera", "Wen", "Yusuf", "Zoe")
_LAST = ("Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
         "Jensen", "Khan", "Lopez", "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Silva",
         "Tanaka", "Weber")
_GROUPS = ("Operations", "Finance", "Sales", "Customer Success", "Legal", "IT Support",
           "People Team", "Marketing")
# (template title, the prefix its runs are named with)
_TEMPLATES = (
    ("Client Onboarding", "Onboarding"), ("Employee Onboarding", "New hire"),
    ("Vendor Setup", "Vendor setup"), ("Quarterly Business Review", "QBR"),
    ("Purchase Request", "Purchase"), ("Contract Approval", "Contract"),
    ("IT Access Request", "IT access"), ("Expense Claim", "Expenses"),
    ("Content Publishing", "Publish"), ("Incident Review", "Incident"),
    ("Employee Offboarding", "Offboarding"), ("Customer Renewal", "Renewal"),
    ("Invoice Dispute", "Dispute"), ("Office Move", "Office move"),
    ("Security Audit", "Audit"), ("Partner Referral", "Referral"),
)
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries",
              "Wayne Enterprises", "Wonka", "Soylent", "Cyberdyne", "Tyrell", "Massive Dynamic",
              "Vandelay Industries", "Dunder Mifflin", "Pied Piper", "Oscorp", "Aperture",
              "Black Mesa", "Gringotts", "Monsters Inc", "Nakatomi", "Prestige Worldwide",
              "Sirius Cybernetics", "Virtucon", "Weyland-Yutani", "Blue Sun", "Buy n Large",
              "Duff", "Krusty Krab", "Los Pollos Hermanos")
_ICONS = ("fa-briefcase", "fa-user-plus", "fa-truck", "fa-chart-line", "fa-file-contract",
          "fa-key", "fa-receipt", "fa-bullhorn", "fa-shield-alt", "fa-handshake")
# (label, field type); the first is on every template, so every run has a "Customer name"
_KICKOFF = (("Customer name", "text"), ("Start date", "date"), ("Contact email", "email"),
            ("Region", "text"), ("Notes", "textarea"), ("PO number", "text"),
            ("Account manager", "text"))
_REGIONS = ("EMEA", "APAC", "Americas", "Nordics", "DACH")
_STATUSES = ("active",) * 7 + ("problem", "delayed", "complete")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """Laravel's JSON date format: microseconds, UTC, ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _moments(rng: random.Random) -> tuple[str, str]:
    created = _EPOCH + timedelta(seconds=rng.randrange(540 * 86_400))
    updated = created + timedelta(seconds=rng.randrange(30 * 86_400))
    return iso(created), iso(updated)


def default_org_id(seed: int) -> str:
    return _hex32(random.Random(f"{seed}:org"))


def default_token(seed: int) -> str:
    return f"sandbox-{random.Random(f'{seed}:token').getrandbits(160):040x}"


def generate_org(seed: int = 1, runs: int = 200, templates: int = 50) -> dict[str, Any]:
    """A realistic organization: ~20 members, a few groups, ``templates`` checklists with
    kick-off fields, and ``runs`` runs (1-4 members, 0-2 groups each). Deterministic."""
    members = _members(random.Random(f"{seed}:members"))
    member_ids = [m["id"] for m in members]
    groups = _groups(random.Random(f"{seed}:groups"), member_ids)
    group_ids = [g["id"] for g in groups]
    checklists, kickoff = _checklists(random.Random(f"{seed}:checklists"), templates,
                                      member_ids, group_ids)
    run_records = _runs(random.Random(f"{seed}:runs"), runs, checklists, kickoff, members,
                        group_ids)
    assignees = _task_assignees(random.Random(f"{seed}:tasks"), run_records, member_ids)
    # Its own stream: adding tasks moved no id of the records above.
    tasks = generate_tasks(random.Random(f"{seed}:tasklist"), run_records, assignees,
                           member_ids, group_ids)
    return {
        "org_id": default_org_id(seed),
        "token": default_token(seed),
        "seed": seed,
        "members": members,
        "groups": groups,
        "checklists": checklists,
        "kickoff_fields": kickoff,
        "runs": run_records,
        # Derived from the tasks, as the sandbox derives it when it loads them.
        "task_assignees": assignees_of(tasks),
        "tasks": tasks,
    }


def _task_assignees(rng: random.Random, runs: list[dict[str, Any]],
                    member_ids: list[int]) -> dict[str, list[int]]:
    """Who is assigned a task of each run: sometimes people who are not its members, which is
    why the run list's ``owners=`` filter finds more runs than a person owns or is a member of.
    """
    out: dict[str, list[int]] = {}
    for run in runs:
        if rng.random() < 0.5:
            out[run["id"]] = sorted(rng.sample(member_ids, rng.randint(1, 2)))
    return out


def _members(rng: random.Random) -> list[dict[str, Any]]:
    ids = rng.sample(range(10_000, 99_999), 20)
    names = rng.sample([(f, la) for f in _FIRST for la in _LAST], 20)
    out = []
    for index, (user_id, (first, last)) in enumerate(zip(ids, names, strict=True)):
        role = "admin" if index < 3 else ("light" if index >= 16 else "standard")
        out.append({
            "id": user_id, "email": f"{first}.{last}@example.com".lower(),
            "first_name": first, "last_name": last, "full_name": f"{first} {last}",
            "role": role,
        })
    return out


def _groups(rng: random.Random, member_ids: list[int]) -> list[dict[str, Any]]:
    return [
        {"id": _hex32(rng), "name": name, "description": f"The {name} team",
         "members": rng.sample(member_ids, rng.randint(2, 6))}
        for name in _GROUPS[:5]
    ]


def _checklists(rng: random.Random, count: int, member_ids: list[int],
                group_ids: list[str]) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    folders = [_hex32(rng) for _ in range(3)]
    checklists, kickoff = [], {}
    for index in range(count):
        title, _prefix = _TEMPLATES[index % len(_TEMPLATES)]
        if index >= len(_TEMPLATES):
            title = f"{title} {index // len(_TEMPLATES) + 1}"
        checklist_id = _hex32(rng)
        created, updated = _moments(rng)
        checklists.append({
            "id": checklist_id,
            "title": title,
            "summary": f"Standard steps for every {title.lower()}.",
            "guidance": "Follow each step in order; ask the owner when in doubt.",
            "owner_id": rng.choice(member_ids),
            "webhook": (f"https://hooks.example.com/tallyfy/{checklist_id[:8]}"
                        if rng.random() < 0.2 else None),
            "starred": rng.random() < 0.2,
            "type": rng.choice(("procedure",) * 6 + ("form", "document")),
            "icon": rng.choice(_ICONS),
            "folder_id": rng.choice([None, None, *folders]),
            "is_public": rng.random() < 0.1,
            "is_public_kickoff": False,
            "explanation_video": None,
            "default_process_name_format": None,
            "auto_naming": False,
            "users": rng.sample(member_ids, rng.randint(0, 3)),
            "groups": rng.sample(group_ids, rng.randint(0, 1)),
            "created_at": created,
            "last_updated": updated,
        })
        chosen = [_KICKOFF[0], *rng.sample(_KICKOFF[1:], rng.randint(1, 3))]
        kickoff[checklist_id] = [
            # Both keys carry the prerun key: the docs say runs are keyed by `timeline_id`,
            # the SDK says by the field's `id`; a client reading either gets it right.
            {"id": timeline_id, "timeline_id": timeline_id, "label": label,
             "field_type": field_type, "required": position == 0, "position": position + 1}
            for position, (label, field_type) in enumerate(chosen)
            for timeline_id in [_hex32(rng)]
        ]
    return checklists, kickoff


def _kickoff_value(rng: random.Random, label: str, company: str,
                   members: list[dict[str, Any]]) -> str:
    if label == "Customer name":
        return f"{company}"
    if label == "Start date":
        return (_EPOCH + timedelta(days=rng.randrange(600))).strftime("%Y-%m-%d")
    if label == "Contact email":
        return f"ops@{re.sub(r'[^a-z]', '', company.lower())}.example.com"
    if label == "Region":
        return rng.choice(_REGIONS)
    if label == "PO number":
        return f"PO-{rng.randint(10_000, 99_999)}"
    if label == "Account manager":
        return rng.choice(members)["full_name"]
    return rng.choice(("", "Priority customer.", "Waiting on signed contract.",
                       "Second attempt after the March pause."))


def _runs(rng: random.Random, count: int, checklists: list[dict[str, Any]],
          kickoff: dict[str, list[Any]], members: list[dict[str, Any]],
          group_ids: list[str]) -> list[dict[str, Any]]:
    prefixes = {c["id"]: _TEMPLATES[i % len(_TEMPLATES)][1] for i, c in enumerate(checklists)}
    member_ids = [m["id"] for m in members]
    taken: dict[str, int] = {}
    runs = []
    for index in range(count):
        # The first run is always "Onboarding - Acme", something a demo can point at.
        checklist = checklists[0] if index == 0 else rng.choice(checklists)
        company = _COMPANIES[0] if index == 0 else rng.choice(_COMPANIES)
        name = f"{prefixes[checklist['id']]} - {company}"
        taken[name] = taken.get(name, 0) + 1
        if taken[name] > 1:
            name = f"{name} ({taken[name]})"
        created, updated = _moments(rng)
        owner = rng.choice(member_ids)
        status = rng.choice(_STATUSES)
        runs.append({
            "id": _hex32(rng),
            "increment_id": index + 1,
            "name": name,
            "summary": f"{prefixes[checklist['id']]} for {company}.",
            "checklist_id": checklist["id"],
            "checklist_title": checklist["title"],
            "status": status,
            "owner_id": owner,
            "started_by": owner,
            "starred": rng.random() < 0.15,
            "is_public": rng.random() < 0.05,
            "publicly_hidden_fields": [],
            "users": rng.sample(member_ids, rng.randint(1, 4)),
            "groups": rng.sample(group_ids, rng.randint(0, 2)),
            "prerun": {f["timeline_id"]: _kickoff_value(rng, f["label"], company, members)
                       for f in kickoff[checklist["id"]]},
            "tags": [],
            "folders": [],
            "prevent_guest_comment": rng.random() < 0.1,
            "created_at": created,
            "started_at": created,
            "last_updated": updated,
            "completed_at": updated if status == "complete" else None,
            "archived_at": None,
        })
    return runs


def dump_org(org: dict[str, Any]) -> str:
    """The org as the JSON text of a data file (stable: same org, same bytes)."""
    return json.dumps(org, indent=1, ensure_ascii=False) + "\n"


def save_org(org: dict[str, Any], path: Path | str) -> None:
    Path(path).write_text(dump_org(org), encoding="utf-8")


# ---------------------------------------------------------------- loading a data file

_RUN_DEFAULTS: dict[str, Any] = {
    "summary": None, "status": "active", "owner_id": None, "starred": False,
    "is_public": False, "publicly_hidden_fields": [], "users": [], "groups": [],
    "prerun": {}, "tags": [], "folders": [], "prevent_guest_comment": False,
    "checklist_id": None, "created_at": None, "last_updated": None,
}
_CHECKLIST_DEFAULTS: dict[str, Any] = {
    "summary": None, "guidance": None, "owner_id": None, "webhook": None, "starred": False,
    "type": "procedure", "icon": None, "folder_id": None, "is_public": False,
    "is_public_kickoff": False, "explanation_video": None,
    "default_process_name_format": None, "auto_naming": False, "users": [], "groups": [],
    "created_at": None, "last_updated": None,
}


class OrgDataError(ValueError):
    """A data file that cannot be served; the message names the file and the problem."""


def load_org(path: Path | str) -> dict[str, Any]:
    """Read an org JSON file (the shape :func:`generate_org` writes), check it, and fill the
    record fields a hand-written file may leave out. Raises :class:`OrgDataError`."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OrgDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise OrgDataError(f"{path}: not valid JSON: {exc}") from None
    try:
        return normalize_org(raw)
    except OrgDataError as exc:
        raise OrgDataError(f"{path}: {exc}") from None


def normalize_org(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise OrgDataError("the top level must be a JSON object")
    org_id = raw.get("org_id")
    if not isinstance(org_id, str) or not HEX32.match(org_id):
        raise OrgDataError("org_id must be a 32-character lowercase hex string")
    token = raw.get("token")
    if token is not None and (not isinstance(token, str) or not token):
        raise OrgDataError("token, when given, must be a non-empty string")
    members = _list_of_objects(raw, "members")
    for member in members:
        if not isinstance(member.get("id"), int) or isinstance(member.get("id"), bool):
            raise OrgDataError(f"members: every member needs an integer id: {member!r:.80}")
    groups = _list_of_objects(raw, "groups")
    runs = [{**_RUN_DEFAULTS, **r} for r in _list_of_objects(raw, "runs")]
    checklists = [{**_CHECKLIST_DEFAULTS, **c} for c in _list_of_objects(raw, "checklists")]
    for kind, records in (("groups", groups), ("runs", runs), ("checklists", checklists)):
        seen: set[str] = set()
        for record in records:
            record_id = record.get("id")
            if not isinstance(record_id, str) or not HEX32.match(record_id):
                raise OrgDataError(f"{kind}: id {record_id!r} is not a 32-character hex id")
            if record_id in seen:
                raise OrgDataError(f"{kind}: id {record_id} appears twice")
            seen.add(record_id)
    for run in runs:
        if not isinstance(run["prerun"], dict):
            raise OrgDataError(f"runs: {run['id']}: prerun must be an object")
    kickoff = raw.get("kickoff_fields") or {}
    if not isinstance(kickoff, dict):
        raise OrgDataError("kickoff_fields must be an object keyed by checklist id")
    assignees = raw.get("task_assignees") or {}
    if not isinstance(assignees, dict) or not all(
        isinstance(users, list) and all(isinstance(u, int) for u in users)
        for users in assignees.values()
    ):
        raise OrgDataError("task_assignees must be an object: run id -> list of user ids")
    tasks = _list_of_objects(raw, "tasks")
    seen_tasks: set[str] = set()
    for task in tasks:
        task_id = task.get("id")
        if not isinstance(task_id, str) or not HEX32.match(task_id) or task_id in seen_tasks:
            raise OrgDataError(f"tasks: id {task_id!r} is not a 32-character hex id, or repeated")
        seen_tasks.add(task_id)
        owners = task.get("owners")
        if not isinstance(owners, dict) or not all(
                isinstance(owners.get(k), list) for k in ("users", "guests", "groups")):
            raise OrgDataError(f"tasks: {task_id}: owners must be an object of three lists "
                               "(users, guests, groups)")
        form_fields = task.get("form_fields", [])
        if not isinstance(form_fields, list) or not all(
                isinstance(f, dict) and isinstance(f.get("id"), str) for f in form_fields):
            raise OrgDataError(f"tasks: {task_id}: form_fields must be a list of objects "
                               "with an id")
    org = {key: value for key, value in raw.items()
           if key not in ("members", "groups", "runs", "checklists", "kickoff_fields")}
    org.update(members=members, groups=groups, checklists=checklists, kickoff_fields=kickoff,
               runs=runs)
    return org


def _list_of_objects(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OrgDataError(f"{key} must be a list of objects")
    return value
