"""Planted bugs: one named bug per promise, and the tests that must catch it.

`make mutants` (``python -m tests.run_mutants``) plants each one alone in a copy of the tree,
runs only its tests, and reports it caught (a test failed) or survived (every test passed).
A survivor is a promise the suite does not guard.

Each mutant is data: the file, the exact text to replace (it must occur exactly once: when
the code moves, the runner says the patch no longer applies and fails, and
``tests/test_mutants_table.py`` fails `make test` too), the text to put instead, and the
tests that guard the promise. When code moves, re-point `old`/`new` here; keep each bug the
smallest edit that breaks its promise, anchored where the promise lives.

Why a table and not mutmut or cosmic-ray: they mutate every operator they find and report
thousands of anonymous survivors (most harmless: a log wording, a default); what this
suite needs answered is narrower and must stay stable across refactors: "does the test
for THIS promise fail when THIS rule is broken?". A named patch states the rule it breaks,
runs in seconds with a handful of tests, and reads as documentation of what each test is for.

Not collected by pytest (not named test_*).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str  # what a user loses when this bug ships
    file: str  # from the repository root
    old: str  # exact text, present exactly once in `file`
    new: str
    tests: tuple[str, ...]  # pytest node ids (file::test, parameters included by default)


_ANSWERS = "tests/tallyfy/test_answers.py"
_EXPECT = "tests/tallyfy/test_expect.py"
_TASKS = "tests/tallyfy/test_tasks.py"
_CONFIG = "tests/commands/test_config.py"
_UNDO = "tests/commands/test_undo.py"
_UNDO_TASKS = "tests/commands/test_undo_tasks.py"
_SAFETY = "tests/tallyfy/test_safety.py"

MUTANTS: tuple[Mutant, ...] = (
    # -- the six bugs of issue 18 (and test 7), each pinned by a test written for it ----------
    Mutant(
        name="answer-value-unchecked",
        promise="ok means the server holds the change: a 200 showing the old value is not ok",
        file="bulk/tallyfy/plan.py",
        old="    if not isinstance(written, dict):\n        return []\n",
        new="    if True:\n        return []\n",
        tests=(f"{_ANSWERS}::test_a_200_showing_the_old_value_is_not_ok",
               f"{_ANSWERS}::test_a_task_answered_200_with_its_old_title_is_not_ok"),
    ),
    Mutant(
        name="expect-cleared-field-passes",
        promise="a field expected set and emptied since is a conflict, not overwritten",
        file="bulk/tallyfy/expect.py",
        old="        if not same_value(field, current, wanted):\n",
        new="        if current not in (None, '', []) and not same_value(field, current, wanted):\n",
        tests=(f"{_EXPECT}::test_a_field_expected_set_and_cleared_since_is_a_conflict",
               f"{_EXPECT}::test_members_expected_and_all_removed_since_is_a_conflict"),
    ),
    Mutant(
        name="owners-empty-lists-left-out",
        promise="a task's owners are sent whole, all three lists, empty ones included",
        file="bulk/tallyfy/targets.py",
        old="        inner = {name: body.pop(name) for name in self.membership}\n",
        new="        inner = {name: value for name in self.membership if (value := body.pop(name))}\n",
        tests=(f"{_TASKS}::test_every_task_put_carries_owners_whole_as_the_server_received_it",),
    ),
    Mutant(
        name="secret-repr-shows-token",
        promise="the token never appears in output, logs or tracebacks",
        file="bulk/tallyfy/connection.py",
        old="        return \"Secret('***')\"\n",
        new="        return f\"Secret({self._value!r})\"\n",
        tests=(f"{_CONFIG}::test_a_connection_never_shows_its_token_however_it_is_printed",),
    ),
    Mutant(
        name="transport-error-in-aiohttps-words",
        promise="a transport failure is one line in our words, no URL, query or header",
        file="bulk/engine/http.py",
        old='    return f"connection failed ({type(exc).__name__})"\n',
        new="    return str(exc)\n",
        tests=("tests/engine/test_http.py::test_any_other_transport_failure_is_worded_in_our_terms",),
    ),
    Mutant(
        name="transport-error-keeps-aiohttps-exception",
        promise="no token in exceptions: aiohttp's error (it holds the headers) is not kept",
        file="bulk/engine/http.py",
        old="        except (TimeoutError, aiohttp.ClientError) as exc:\n            failure = _describe(exc)\n",
        new="        except (TimeoutError, aiohttp.ClientError) as exc:\n            raise TransportError(_describe(exc), method=method, path=path) from None\n",
        tests=("tests/engine/test_http.py::test_any_other_transport_failure_is_worded_in_our_terms",),
    ),
    Mutant(
        name="undo-guests-with-case",
        promise="undo puts back exactly what the job changed: a guest respelt is the same guest",
        file="bulk/tallyfy/undo.py",
        old='        return str(value).lower() if name == "guests" else str(value)\n',
        new="        return str(value)\n",
        tests=(f"{_UNDO_TASKS}::test_a_guest_respelt_in_another_case_is_the_same_guest_to_undo",),
    ),
    Mutant(
        # Test 7 of the issue: without the `with`, the file closes only when the garbage
        # collector drops the reader's frame, silently (the wrapper raises no ResourceWarning).
        name="csv-rows-not-closing-their-file",
        promise="an abandoned or failed rows iterator closes its file",
        file="bulk/engine/reader.py",
        old="        with self._open_text() as text, self._failures() as state:\n            reader = state.reader",
        new="        text = self._open_text()\n        with self._failures() as state:\n            reader = state.reader",
        tests=("tests/engine/test_input_reader.py::test_abandoned_rows_iterator_closes_its_file",),
    ),
    Mutant(
        name="jsonl-rows-not-closing-their-file",
        promise="an abandoned or failed rows iterator closes its file",
        file="bulk/engine/reader.py",
        old="        with self._open_text() as text, self._failures():\n            number = 0\n",
        new="        text = self._open_text()\n        with self._failures():\n            number = 0\n",
        tests=("tests/engine/test_input_reader.py::test_abandoned_rows_iterator_closes_its_file",),
    ),
    Mutant(
        name="watched-file-close-keeps-it-open",
        promise="an abandoned or failed rows iterator closes its file",
        file="bulk/engine/watched_file.py",
        old="        try:\n            self._raw.close()\n        finally:\n            super().close()\n",
        new="        try:\n            pass\n        finally:\n            super().close()\n",
        tests=("tests/engine/test_input_reader.py::test_abandoned_rows_iterator_closes_its_file",),
    ),
    # -- one bug for each promise of README's "Each row, safely" ------------------------------
    Mutant(
        name="members-sent-only-when-changed",
        promise="users and groups are always re-sent (a PUT without them strips every member)",
        file="bulk/tallyfy/plan.py",
        old="    for name in lists:\n        body[name] = memberships[name]\n",
        new="    for name in lists:\n        if name in after:\n            body[name] = memberships[name]\n",
        tests=(f"{_SAFETY}::test_rename_keeps_every_member_of_every_run",
               f"{_SAFETY}::test_template_rename_keeps_members_and_sends_title"),
    ),
    Mutant(
        name="owners-missing-list-read-as-empty",
        promise="owners always whole: a read that lost a list sends nothing",
        file="bulk/tallyfy/shapes.py",
        old="            if isinstance(inner.get(name), list):\n                flat[name] = member_ids(inner[name], name)\n",
        new="            if True:\n                flat[name] = member_ids(inner.get(name) or [], name)\n",
        tests=(f"{_TASKS}::test_a_read_without_deadline_or_a_whole_owners_sends_nothing",),
    ),
    Mutant(
        name="one-unknown-column-slips-through",
        promise="unknown columns are refused before any request",
        file="bulk/tallyfy/targets.py",
        old="    if unknown:\n        noun = ",
        new="    if len(unknown) > 1:\n        noun = ",
        tests=(f"{_SAFETY}::test_unknown_column_is_refused_before_any_request",
               "tests/tallyfy/test_input_fields.py::test_unknown_column_is_refused_with_a_suggestion"),
    ),
    Mutant(
        name="redirects-followed",
        promise="a redirect is never followed; the body is never sent anywhere else",
        file="bulk/engine/http.py",
        old="                allow_redirects=False,\n",
        new="                allow_redirects=True,\n",
        tests=("tests/engine/test_http_redirects.py::test_a_redirected_put_is_refused_and_its_body_goes_nowhere",),
    ),
    Mutant(
        name="ledger-lock-shared",
        promise="one run per ledger: a second run is refused, naming the holder",
        file="bulk/engine/ledger_file.py",
        old="                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n",
        new="                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\n",
        tests=("tests/engine/test_ledger_lock.py::test_a_second_open_in_the_same_process_is_refused_naming_the_holder",),
    ),
    Mutant(
        name="in-doubt-rows-skipped-on-resume",
        promise="a row in doubt is settled by reading it back on the next run",
        file="bulk/engine/ledger_rows.py",
        old="TERMINAL = frozenset({OK, UNCHANGED, INVALID, FAILED, CONFLICT})\n",
        new="TERMINAL = frozenset({OK, UNCHANGED, INVALID, FAILED, CONFLICT, IN_DOUBT})\n",
        tests=("tests/tallyfy/test_resume.py::test_a_write_never_acknowledged_stays_in_doubt_until_a_resume_reads_it_back",),
    ),
    Mutant(
        name="expect-kickoff-value-ignored",
        promise="expect conflicts: a kick-off value changed since is a conflict",
        file="bulk/tallyfy/expect.py",
        old="                if found is _ABSENT or not form_values.same(fields.get(key), found,\n",
        new="                if found is _ABSENT or False and not form_values.same(fields.get(key), found,\n",
        tests=(f"{_EXPECT}::test_jsonl_expect_object_with_null_and_prerun",),
    ),
    Mutant(
        name="undo-replaces-member-lists",
        promise="undo as deltas: members added since the job stay",
        file="bulk/tallyfy/undo.py",
        old="        if name in target.membership:\n            added, removed",
        new="        if name in target.membership and False:\n            added, removed",
        tests=(f"{_UNDO}::test_undo_of_a_members_job_and_undo_of_the_undo",
               f"{_UNDO_TASKS}::test_undo_keeps_an_assignee_added_since_and_one_off_tasks_work"),
    ),
    Mutant(
        name="429-spends-an-attempt",
        promise="a 429 never spends a row's attempts (the quota is the job's)",
        file="bulk/engine/retry.py",
        old="    if isinstance(exc, HttpError) and exc.status == 429:\n        return False\n",
        new="    if isinstance(exc, HttpError) and exc.status == 429:\n        return True\n",
        tests=("tests/tallyfy/test_quota.py::test_rows_refused_for_the_quota_do_not_spend_their_attempts",),
    ),
    Mutant(
        name="nothing-to-change-still-sent",
        promise="a row that changes nothing is unchanged and sends no PUT",
        file="bulk/tallyfy/plan.py",
        old="    if not after:\n        return None\n",
        new="    if False:\n        return None\n",
        tests=(f"{_SAFETY}::test_a_row_that_changes_nothing_sends_no_put",),
    ),
    Mutant(
        name="answer-of-another-record-accepted",
        promise="a 2xx must show the record asked for, else the record is read back",
        file="bulk/tallyfy/client.py",
        old='        if str(record.get("id", "")).strip().lower() != record_id:\n',
        new="        if False:\n",
        tests=(f"{_ANSWERS}::test_a_put_answered_without_the_record_is_read_back_and_fails_if_not_there",),
    ),
    Mutant(
        # In row_applier.py, which colleagues are reshaping: re-point after their merge.
        name="put-from-an-old-read",
        promise="no PUT from a read older than 2 s: a member added meanwhile is kept",
        file="bulk/tallyfy/row_applier.py",
        old="            if self.clock.now() - read_at <= MAX_READ_AGE:\n",
        new="            if True:\n",
        tests=("tests/tallyfy/test_read_window.py::test_a_member_added_during_a_long_cooldown_is_kept",),
    ),
    Mutant(
        name="bad-token-shown-in-its-refusal",
        promise="no token in output: not even a malformed one, in the message refusing it",
        file="bulk/tallyfy/connection.py",
        old='            "not a usable bearer token; check how it was copied',
        new='            f"not a usable bearer token {token!r}; check how it was copied',
        tests=(f"{_CONFIG}::test_a_token_no_header_can_carry_is_refused_once_and_never_shown",
               f"{_CONFIG}::test_the_library_refuses_them_too_and_never_in_the_message"),
    ),
    Mutant(
        name="retry-first-failure-not-counted",
        promise="--max-attempts holds: a row's first attempt, made outside tenacity, counts",
        file="bulk/engine/retry.py",
        old="                    raise failed\n",
        new="                    pass\n",
        tests=("tests/engine/test_retry.py::test_stops_after_max_attempts_and_reraises_the_last_error",
               "tests/engine/test_retry.py::test_run_numbers_the_attempts_and_starts_tenacity_only_on_a_failure"),
    ),
    Mutant(
        name="queued-reads-served-before-writes",
        promise="a row's write is not held behind reads of rows begun after it",
        file="bulk/engine/slots.py",
        old="        for line in (self._first, self._others):\n            while line:\n                waiter = line.popleft()",
        new="        for line in (self._others, self._first):\n            while line:\n                waiter = line.popleft()",
        tests=("tests/engine/test_pace_told.py::test_a_write_slot_is_served_before_reads_queued_earlier",),
    ),
    Mutant(
        name="pacer-forgets-sends-too-soon",
        promise="a found quota is measured on every send of the cycle, not the last seconds",
        file="bulk/engine/accepted_sends.py",
        old="        bins, oldest = self._bins, (now - self.window) // RESOLUTION\n",
        new="        bins, oldest = self._bins, (now - self.window / 60) // RESOLUTION\n",
        tests=("tests/engine/test_accepted_sends.py::test_what_is_older_than_the_window_is_forgotten",
               "tests/engine/test_pacing_adaptive.py::test_the_job_converges_to_the_hidden_quota",
               "tests/tallyfy/test_pace_jobs.py::test_a_found_quota_of_5_is_used_whole_with_a_single_429"),
    ),
)
