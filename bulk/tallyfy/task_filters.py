"""What `bulk select tasks` adds to the filters: how tasks are found, and their statuses.

Tasks have no org-wide list: they are listed per member (`users/{id}/tasks`) or per run
(`runs/{id}/tasks`), so a select of tasks names one or the other. Open tasks are the default:
completed ones are history, and a handover leaves them alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Task statuses `--status` may also name: "active" (not completed) and "all".
ACTIVE, ALL = "active", "all"
DONE = "completed"


def status_matches(status: Any, wanted: Sequence[str]) -> bool:
    """A task's status against `--status` values (exact statuses, "active" or "all")."""
    if ALL in wanted or status in wanted:
        return True
    return ACTIVE in wanted and status != DONE


def task_options_problem(owner: int | None, member: int | None, assignee: int | None,
                         run: str | None) -> str | None:
    """Why these options cannot select tasks, or None."""
    for flag, value in {"--owner": owner, "--member": member}.items():
        if value is not None:
            return f"{flag} applies to runs and templates; tasks take --assignee"
    if assignee is None and run is None:
        return "tasks are listed per member or per run: give --assignee USER_ID or --run RUN_ID"
    return None


def task_statuses(statuses: Sequence[str]) -> tuple[str, ...]:
    """Open tasks only unless --status says otherwise."""
    return tuple(statuses) or (ACTIVE,)
