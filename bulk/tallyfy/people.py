"""Members named by email where a user id is taken, resolved from the organization's list.

`owner_id`, `users`, `add_users`, `remove_users` (and their `expect.` columns), a task's
assignees, and select's `--owner`, `--member` and `--assignee` take a member's email as
well as their numeric id, as the tools admins know do (GAM, Data Loader). The member list
(`GET /organizations/{org}/users`, paged) is read once per job, and only when an email is
actually given; an email no member has makes its row `invalid` before any PUT (a select
flag: exit 2). Every member counts, active or not: a leaver being removed may already be
deactivated, and the API itself refuses an inactive member where it cannot take one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from bulk.engine.breaker import OutageError
from bulk.engine.clock import Clock
from bulk.engine.errors import AuthError, ConfigError, HttpError, RowInvalid, TransportError
from bulk.engine.http import Answer
from bulk.engine.retry import RetryPolicy
from bulk.tallyfy.api import Pacing, open_api
from bulk.tallyfy.client import TallyfyClient
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.rows import Change
from bulk.tallyfy.targets import RUNS
from bulk.tallyfy.values import Email

#: The members list: `GET /organizations/{org}/users`.
MEMBERS_PATH = ("users",)
PER_PAGE = 100
#: Pages read at most (100 members a page): a list that never ends is not followed forever.
MAX_PAGES = 1_000
_AMBIGUOUS = -1  # an email two members share: names nobody for sure


class MembersUnavailable(Exception):
    """The member list could not be read (the rows naming emails fail, retried later)."""


@dataclass(frozen=True)
class Directory:
    """Lower-cased email -> user id, from the organization's member list."""

    ids: dict[str, int]

    def id_of(self, email: str) -> int | None:
        found = self.ids.get(email.strip().lower())
        return None if found is None or found == _AMBIGUOUS else found

    def why_not(self, email: str) -> str:
        if self.ids.get(email.strip().lower()) == _AMBIGUOUS:
            return f"more than one member has the email {email}"
        return f"no member of the organization has the email {email}"


async def read_directory(client: TallyfyClient, policy: RetryPolicy, clock: Clock) -> Directory:
    """Every page of the member list. Raises AuthError, or MembersUnavailable."""
    ids: dict[str, int] = {}
    for page in range(1, MAX_PAGES + 1):
        params = {"page": str(page), "per_page": str(PER_PAGE)}
        answer = await _retried(policy, clock, lambda n, p=params: client.list_page(
            RUNS, p, attempt=n, segments=MEMBERS_PATH))
        items, total_pages = _members_page(answer)
        for member in items:
            email, user_id = member.get("email"), _user_id(member.get("id"))
            if isinstance(email, str) and email.strip() and user_id is not None:
                key = email.strip().lower()
                ids[key] = user_id if ids.get(key, user_id) == user_id else _AMBIGUOUS
        if (total_pages is not None and page >= total_pages) or len(items) < PER_PAGE:
            return Directory(ids)
    raise MembersUnavailable(f"the member list did not end within {MAX_PAGES} pages")


async def directory_for(connection: Connection, pacing: Pacing, clock: Clock) -> Directory:
    """The member list read before select's pages (its flags name emails), through the API
    opened as every job opens it: paced, retried, outage breaker included."""
    async with open_api(connection, pacing, clock, connections=1, one_stream=True) as api:
        try:
            return await read_directory(api.client, api.policy, clock)
        except OutageError as exc:
            # Inside a job an outage stops the job (its rows resume); here nothing has begun,
            # so it is the list that could not be read (select starts over, no resuming).
            raise MembersUnavailable(
                f"cannot read the organization's member list: {exc.outage}") from None


def _user_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def _members_page(answer: Answer) -> tuple[list[dict[str, Any]], int | None]:
    body = answer.data
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise MembersUnavailable("the member list answer has no data array")
    meta = body.get("meta") if isinstance(body, dict) else None
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    total = pagination.get("total_pages") if isinstance(pagination, dict) else None
    return [m for m in items if isinstance(m, dict)], total if isinstance(total, int) else None


async def _retried(policy: RetryPolicy, clock: Clock, call: Any) -> Answer:
    try:
        return await policy.run(clock, call)
    except AuthError:
        raise
    except HttpError as exc:
        raise MembersUnavailable(
            f"cannot read the organization's member list: {exc.describe()}") from None
    except TransportError as exc:
        raise MembersUnavailable(f"cannot read the organization's member list: {exc}") from None


class People:
    """A job's resolver: reads the member list on the first email a row gives, once."""

    def __init__(self, client: TallyfyClient, policy: RetryPolicy, clock: Clock,
                 source: str) -> None:
        self._client, self._policy, self._clock = client, policy, clock
        self._source = source
        self._lock = asyncio.Lock()
        self._directory: Directory | None = None
        self._failure: str | None = None
        self.reads = 0  # times the member list was read (once per job)

    async def resolve(self, change: Change) -> Change:
        """The change with every email replaced by its member's id.

        Raises RowInvalid for an email no member has, MembersUnavailable when the list
        cannot be read (once failed, it is not asked again in this job).
        """
        if not has_emails(change):
            return change
        async with self._lock:
            if self._directory is None and self._failure is None:
                self.reads += 1
                try:
                    self._directory = await read_directory(self._client, self._policy,
                                                           self._clock)
                except MembersUnavailable as exc:
                    self._failure = str(exc)
        if self._directory is None:
            raise MembersUnavailable(self._failure or "the member list could not be read")
        return resolve_change(change, self._directory, self._source)


def has_emails(change: Change) -> bool:
    return any(_holds_email(value) for value in (
        *change.set.values(), *change.expect.values(), change.add_users, change.remove_users))


def _holds_email(value: Any) -> bool:
    if isinstance(value, Email):
        return True
    return isinstance(value, list | tuple) and any(isinstance(v, Email) for v in value)


def resolve_change(change: Change, directory: Directory, source: str) -> Change:
    """Emails -> ids in every user value of the change. Raises RowInvalid naming the row,
    the column and the email."""

    def one(value: Any, column: str) -> Any:
        if not isinstance(value, Email):
            return value
        found = directory.id_of(value)
        if found is None:
            raise RowInvalid(f'{source}: row {change.row}, column "{column}": '
                             f"{directory.why_not(value)}")
        return found

    def each(value: Any, column: str) -> Any:
        if isinstance(value, list | tuple):
            ids = list(dict.fromkeys(one(item, column) for item in value))
            return tuple(ids) if isinstance(value, tuple) else ids
        return one(value, column)

    changed = replace(
        change,
        set={name: each(value, name) for name, value in change.set.items()},
        expect={name: each(value, f"expect.{name}") for name, value in change.expect.items()},
        add_users=each(change.add_users, "add_users"),
        remove_users=each(change.remove_users, "remove_users"),
    )
    both = set(changed.add_users) & set(changed.remove_users)
    if both:
        raise RowInvalid(f'{source}: row {change.row}, columns "add_users" and "remove_users": '
                         f"user {min(both)} is both added and removed (by id and by email)")
    return changed


def resolve_flags(values: dict[str, Any], directory: Directory, org: str) -> dict[str, int]:
    """select's --owner/--member/--assignee given as emails, as ids; ConfigError (exit 2)
    naming the flag and the email that names nobody."""
    out: dict[str, int] = {}
    for flag, email in values.items():
        found = directory.id_of(email)
        if found is None:
            raise ConfigError(f"--{flag} {email}: {_flag_reason(directory, email, org)}")
        out[flag] = found
    return out


def _flag_reason(directory: Directory, email: str, org: str) -> str:
    if directory.ids.get(email.strip().lower()) == _AMBIGUOUS:
        return f"more than one member of organization {org} has this email"
    return f"no member of organization {org} has this email; nothing selected, nothing written"
