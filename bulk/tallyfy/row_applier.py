"""One row of `bulk apply`: read the record, merge the change, write it, verify the answer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bulk.engine.clock import Clock
from bulk.engine.errors import (
    AmbiguousAnswer,
    AuthError,
    HttpError,
    PlanError,
    RowInvalid,
    StaleRead,
    TransportError,
)
from bulk.engine.ledger import (
    CONFLICT,
    FAILED,
    IN_DOUBT,
    INVALID,
    OK,
    UNCHANGED,
    Entry,
)
from bulk.engine.reader import RawRow
from bulk.engine.retry import RetryPolicy, should_retry
from bulk.engine.row_context import RowContext, WorkItem
from bulk.engine.stops import DEFINITIVE, TRANSIENT
from bulk.tallyfy.client import TallyfyClient
from bulk.tallyfy.expect import find_conflict
from bulk.tallyfy.people import MembersUnavailable, People
from bulk.tallyfy.plan import InvalidHere, LeftAlone, Plan, plan_update, unapplied
from bulk.tallyfy.rows import Change, RowParser
from bulk.tallyfy.targets import Target

#: Records a dry run remembers as its rows would leave them (see RowApplier._would_be).
DRY_RUN_MEMORY = 10_000
#: A PUT is built from a read no older than this when it leaves; older, read again.
MAX_READ_AGE = 2.0
#: Re-reads in one attempt before giving the attempt up (each one waited out a new
#: cooldown longer than MAX_READ_AGE right after its read, or was refused with a 429).
MAX_REREADS = 5


@dataclass
class _RowState:
    attempts: int = 0
    #: A PUT of this row left (its bytes did, and it was not refused) and may have landed;
    #: `before`/`after` are that PUT's: the record as read just before it, and what it set.
    sent: bool = False
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def left(self, plan: Plan) -> None:
        """A PUT built on `plan` left. It was planned on a read that did not show any
        earlier PUT of the row landed, so from now on its values are the ones to keep."""
        self.sent = True
        self.before, self.after = plan.before, plan.after


class RowApplier:
    """Applies one row: read the record, merge the change, write it, verify the answer.

    The retry unit is the whole read-merge-write, not the write alone: after an
    ambiguous failure (a 5xx, a dropped connection, a timeout) the next attempt reads
    the record again, and if the first write did land, it sends nothing more. A PUT
    never leaves on a read older than MAX_READ_AGE: the record is read again first.
    """

    def __init__(
        self,
        target: Target,
        parser: RowParser,
        client: TallyfyClient,
        policy: RetryPolicy,
        clock: Clock,
        *,
        dry_run: bool = False,
        include_completed: bool = False,
        people: People | None = None,
    ) -> None:
        self.people = people  # emails in user cells -> ids (None: ids only)
        self.target = target
        self.include_completed = include_completed
        self.parser = parser
        self.client = client
        self.policy = policy
        self.clock = clock
        self.dry_run = dry_run
        #: Dry run: each record as the rows planned so far would leave it, so a later row
        #: of one record is planned on what the earlier ones would write (rows of one
        #: record run one at a time, in file order). The latest few thousand records.
        self._would_be: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def __call__(self, item: WorkItem, context: RowContext) -> Entry:
        entry = await self._apply(item, context)
        if entry.status not in (OK, UNCHANGED):
            # Kept so `bulk export --format csv` can hand the row back as a new input.
            entry.input = dict(item.payload.values) or None
        return entry

    async def _apply(self, item: WorkItem, context: RowContext) -> Entry:
        raw: RawRow = item.payload
        try:
            change = self.parser.parse(raw)
        except RowInvalid as exc:
            record_id = raw.values.get(self.parser.id_column) if raw.values else None
            return Entry(
                row=item.row,
                status=INVALID,
                record_id=record_id if isinstance(record_id, str) else None,
                error=str(exc),
            )
        if self.people is not None:
            try:
                change = await self.people.resolve(change)
            except RowInvalid as exc:  # an email no member has: before any PUT
                return Entry(row=item.row, status=INVALID, record_id=change.record_id,
                             error=str(exc))
            except MembersUnavailable as exc:
                return Entry(row=item.row, status=FAILED, record_id=change.record_id,
                             error=str(exc), error_kind=TRANSIENT, reason=str(exc))
        if change.changes_nothing():
            # Only expect.* cells (a selected row nobody edited): nothing to guard or send.
            return Entry(row=item.row, status=UNCHANGED, record_id=change.record_id)
        state = _RowState()
        earlier = context.doubt_entry
        if earlier is not None:
            # Settling a write an earlier run may have landed: its before-values are
            # the true ones (the record may already show the change).
            state.sent = True
            state.before, state.after = earlier.before, earlier.after
            state.attempts = earlier.attempts
        base = Entry(row=item.row, status=FAILED, record_id=change.record_id)
        try:
            return await self.policy.run(
                self.clock, lambda _: self._attempt(change, context, state, base))
        except AuthError:
            raise
        except HttpError as exc:
            # After a transient failure an earlier write of this row may still have
            # landed; a definitive 4xx says this row cannot be done, not that.
            return self._failed(base, state, exc.describe(), exc.status, exc.request_id,
                                ambiguous=should_retry(exc),
                                reason=HttpError(exc.status, exc.body).describe())
        except TransportError as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=True)
        except AmbiguousAnswer as exc:
            return self._failed(base, state, str(exc), exc.status, exc.request_id,
                                ambiguous=True)
        except StaleRead as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=True)
        except InvalidHere as exc:  # the row asks what this record cannot take: invalid
            return _remark(self._failed(base, state, str(exc), None, None, ambiguous=False),
                           INVALID)
        except LeftAlone as exc:  # the record is not as the row's author saw it: open
            return _remark(self._failed(base, state, str(exc), None, None, ambiguous=False),
                           CONFLICT)
        except PlanError as exc:
            return self._failed(base, state, str(exc), None, None, ambiguous=False)

    async def _attempt(
        self, change: Change, context: RowContext, state: _RowState, base: Entry
    ) -> Entry:
        state.attempts += 1
        number = state.attempts
        read = await self.client.read(self.target, change.record_id, attempt=number)
        holding_slot = False  # a pacer slot granted to the PUT, kept across re-reads
        for reread in range(MAX_REREADS + 1):
            if reread:
                # Its own slot; the PUT keeps the one it was granted, so it can leave
                # right after this answer instead of queueing (and aging) again.
                try:
                    read = await self.client.read(self.target, change.record_id,
                                                  attempt=number)
                except HttpError as exc:
                    if exc.status != 429:
                        raise
                    # Not one of the row's attempts: this read exists only because of a
                    # cooldown, and the 429 set the next one, which the next read waits out.
                    continue
            # Its age counts from when the request left, not from its answer: the server
            # may have read the record long before the answer arrived.
            read_at = read.sent_at if read.sent_at is not None else self.clock.now()
            base.record_name = self.target.name_of(read.data) or base.record_name
            record = self._would_be.get(change.record_id, read.data) if self.dry_run \
                else read.data
            plan = plan_update(self.target, record, change,
                               include_done=self.include_completed)
            if plan is None:
                entry = _entry(base, OK if state.sent else UNCHANGED, state, read.status,
                               read.request_id)
                entry.read_back = state.sent  # our earlier write, seen by reading
                return entry
            # Checked against the record as read just now, right before the write; only
            # when there is something to write (a record already as asked needs no guard).
            # A dry run checks what the earlier rows of the record would have left there,
            # as a real run finds it.
            conflict = find_conflict(record, change.expect) if change.expect else None
            if conflict is not None:
                # An earlier PUT of this row that may have landed keeps its before/after.
                entry = _entry(base, CONFLICT, state, read.status, read.request_id)
                entry.error = conflict
                return entry
            if self.dry_run:
                # What a real run would write, recorded as `ok` in the dry run's own ledger.
                entry = _entry(base, OK, state, read.status, read.request_id)
                entry.before, entry.after = plan.before, plan.after
                self._remember(change.record_id, record, plan)
                return entry
            age = self.clock.now() - read_at
            if age > MAX_READ_AGE:
                # Old on arrival: the answer alone took longer than a read stays usable (a
                # slow server or network). Reading again at once would come back as old, so
                # the attempt is given up (tried again after the backoff); nothing is sent.
                raise StaleRead(
                    f"the read was answered {age:.1f} s after it was sent, later than the "
                    f"{MAX_READ_AGE:g} s a read stays usable for a write; nothing sent"
                )
            marked = context.doubt_entry
            if marked is None or (marked.before, marked.after) != (plan.before, plan.after):
                # The mark carries this PUT's before-values: a crash after it lands must
                # not lose them.
                mark = _entry(base, IN_DOUBT, state, read.status, read.request_id)
                mark.before, mark.after = plan.before, plan.after
                await context.mark_in_doubt(mark)
            if holding_slot:
                await self.client.cooled()  # a 429 meanwhile still holds everyone
            else:
                await self.client.slot()
                holding_slot = True
            # The body carries membership as read: after a long wait (a 429 cooldown can
            # be minutes) someone may have added a member that this PUT would remove.
            if self.clock.now() - read_at <= MAX_READ_AGE:
                break
        else:
            raise StaleRead(
                f"waited more than {MAX_READ_AGE:g} s to send after each of "
                f"{MAX_REREADS + 1} reads; nothing sent on them"
            )
        odd: AmbiguousAnswer | None = None
        try:
            written = await self._send(change, plan, state, number)
        except AmbiguousAnswer as exc:
            # A 2xx that is not the record as we expect it (another shape, no body): the
            # record says whether the write landed; read it back right away.
            odd, answered, wrong = exc, exc.status, ["the change"]
        else:
            answered, wrong = written.status, unapplied(plan, written.data)
            if not wrong:
                return _entry(base, OK, state, written.status, written.request_id)
        # The answer does not show the change: what the record holds says if it landed.
        back = await self.client.read(self.target, change.record_id, attempt=number)
        still = unapplied(plan, back.data)
        if not still:
            entry = _entry(base, OK, state, back.status, back.request_id)
            entry.read_back = True
            return entry
        if len(still) >= len(plan.after):
            state.sent = False  # none of it landed: nothing to undo
            state.before = state.after = None
            if odd is not None:
                raise odd  # not the API's answer, it seems (a proxy's?): worth another try
        raise PlanError(
            f"the server answered {answered} but did not apply {', '.join(wrong)} "
            f"(read back: {', '.join(still)} not as written)"
        )

    async def _send(self, change: Change, plan: Plan, state: _RowState, number: int) -> Any:
        """The PUT. `state` takes its values once its bytes left, unless it was refused
        (a 4xx: not applied); nothing refused before sending is in doubt."""
        try:
            written = await self.client.write(self.target, change.record_id, plan.body,
                                              attempt=number, expect=plan.after, paced=False)
        except TransportError as exc:
            if exc.sent:
                state.left(plan)
            raise
        except HttpError as exc:
            if exc.status >= 500:  # the server may have applied it, then failed
                state.left(plan)
            raise
        except AmbiguousAnswer:
            state.left(plan)  # a 2xx that does not show it: the next attempt reads it back
            raise
        state.left(plan)
        return written

    def _remember(self, record_id: str, record: dict[str, Any], plan: Plan) -> None:
        would_be = dict(record)
        for name, value in plan.after.items():
            if isinstance(value, dict) and isinstance(would_be.get(name), dict):
                would_be[name] = {**would_be[name], **value}  # kick-off values, by key
            elif not isinstance(value, dict):
                would_be[name] = value
        self._would_be[record_id] = would_be
        self._would_be.move_to_end(record_id)
        while len(self._would_be) > DRY_RUN_MEMORY:
            self._would_be.popitem(last=False)

    @staticmethod
    def _failed(
        base: Entry,
        state: _RowState,
        error: str,
        http_status: int | None,
        request_id: str | None,
        *,
        ambiguous: bool,
        reason: str | None = None,
    ) -> Entry:
        # A write that was sent and never acknowledged may have landed: say so, and let
        # the next run settle it by reading the record back.
        status = IN_DOUBT if state.sent and ambiguous else FAILED
        entry = _entry(base, status, state, http_status, request_id)
        entry.error = error
        # Transient: the attempts ran out on 429/5xx/transport; worth another try later.
        entry.error_kind = TRANSIENT if ambiguous else DEFINITIVE
        entry.reason = reason or error
        return entry


def _remark(entry: Entry, status: str) -> Entry:
    # Only when nothing left for this row; a sent write keeps its in-doubt/failed status.
    if entry.status == FAILED and entry.before is None:
        entry.status = status
    return entry


def _entry(
    base: Entry, status: str, state: _RowState, http_status: int | None, request_id: str | None
) -> Entry:
    # Before/after are those of a PUT that may have landed, whatever the row ends as (so
    # undo covers it); none when no PUT left. The in-doubt mark sets its own.
    changed = state.sent
    return Entry(
        row=base.row,
        status=status,
        record_id=base.record_id,
        http_status=http_status,
        attempts=state.attempts,
        request_id=request_id,
        before=state.before if changed else None,
        after=state.after if changed else None,
        record_name=base.record_name,
    )
