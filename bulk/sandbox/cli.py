"""``bulk sandbox``: run the local Tallyfy from a shell until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import click

from bulk.engine.exit_codes import ExitCode
from bulk.sandbox._config import DEFAULT_SLOW_MS, Faults, SandboxConfig
from bulk.sandbox._data import OrgDataError, save_org
from bulk.sandbox._form_fields import FORM_FIELD_SHAPES
from bulk.sandbox._server import TOKEN_SHAPE, Sandbox

_RATE = click.FloatRange(0.0, 1.0)


class _Refused(click.ClickException):
    """A one-line refusal (``Error: ...``), exit 2 like any usage error."""

    exit_code = 2


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


TOKEN_ENV = "BULK_SANDBOX_TOKEN"


def _token_from_env() -> str | None:
    """The token chosen in the environment (never TALLYFY_ACCESS_TOKEN: that may be a real
    one, and the sandbox prints the token it accepts)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return None
    if not TOKEN_SHAPE.fullmatch(token):
        raise _Refused(f"{TOKEN_ENV} must be one word of letters, digits and - . _ ~ + / = "
                       "(what a bearer token may hold); it is not shown here")
    return token


def _note(message: str) -> None:
    click.echo(f"# bulk sandbox: {message}", err=True)


@click.command("sandbox", context_settings={"help_option_names": ["-h", "--help"],
                                            "max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; loopback only unless --allow-remote.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--runs", default=200, show_default=True, type=click.IntRange(min=0),
              help="Runs (processes) to generate.")
@click.option("--templates", default=50, show_default=True, type=click.IntRange(min=0),
              help="Templates (checklists) to generate.")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Seed of the generated data and of the faults (same seed, same day).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="Serve this org JSON file instead of generating (e.g. sample_data/org.json).")
# Refused: a token on the command line is readable by anyone on the machine (`ps`) and
# stays in shell history. Kept (hidden) only to say where the token goes instead.
@click.option("--token", "token_flag", hidden=True)
@click.option("--org-id", help="Organization id to serve (default: derived from the seed/data).")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True),
              help="Quota in requests/second per token; over it: 429 + Retry-After. [off]")
@click.option("--burst", type=click.FloatRange(min=1),
              help="Requests the quota lets through at once. [one second's worth]")
@click.option("--rate-headers/--no-rate-headers", default=True, show_default=True,
              help="With a quota, answer with X-RateLimit-Limit/-Remaining (and -Reset on "
                   "a 429); without them a client must find the quota itself.")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Added to every API answer.")
@click.option("--jitter-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Up to this much more, drawn per request.")
@click.option("--fail-rate", "error_rate", default=0.0, show_default=True, type=_RATE,
              help="Share of requests answered 500/502/503/504 with an HTML page (not applied).")
@click.option("--drop-rate", default=0.0, show_default=True, type=_RATE,
              help="Share of requests whose connection is closed with no answer.")
@click.option("--applied-503-rate", default=0.0, show_default=True, type=_RATE,
              help="Share of PUTs that are applied, then answered 503.")
@click.option("--slow-rate", default=0.0, show_default=True, type=_RATE,
              help="Share of answers sent --slow-ms late (a PUT is applied first).")
@click.option("--slow-ms", default=DEFAULT_SLOW_MS, show_default=True,
              type=click.FloatRange(min=0), help="How late a slow answer is.")
@click.option("--hold-read-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Hold each answer to a GET of one record this long after reading it "
                   "(what it shows is older than its arrival says).")
@click.option("--max-per-page", default=100, show_default=True, type=click.IntRange(min=1),
              help="The list pages' size cap (production: 100).")
@click.option("--total-pages-per", type=click.IntRange(min=1),
              help="Count total_pages by this page size, not the one served "
                   "(production may use its own).")
@click.option("--journal-size", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Requests kept in the journal (GET /_sandbox/journal).")
@click.option("--form-fields-shape", type=click.Choice(FORM_FIELD_SHAPES), default="data",
              show_default=True,
              help="How a task read ?with=form_fields shows them: data ({\"data\": [...]} "
                   "with field_value, as production does) or bare (an array with value, "
                   "as the docs' sample).")
@click.option("--allow-remote", is_flag=True,
              help="Allow listening on a non-loopback address (anyone who can reach it can "
                   "read the data and /_sandbox without a token).")
@click.option("--export", "export_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the org JSON that would be served to this file, and exit.")
def sandbox_command(host: str, port: int, allow_remote: bool, export_path: Path | None,
                    token_flag: str | None, **options: Any) -> None:
    """Serve a local, faithful Tallyfy API to rehearse a job on.

    It behaves like production, hazards included: a PUT without users/groups
    wipes them, unknown keys are dropped with a 200, templates need a title, and
    an optional quota and seeded faults make a bad day on demand.

    When it listens it prints three lines for a shell to eval, then serves until
    Ctrl-C or SIGTERM. Look inside at http://HOST:PORT/_sandbox/ (stats, journal,
    records, settings; no token needed there, and none is shown there). The token
    it accepts is $BULK_SANDBOX_TOKEN if set, else the data file's, else one
    derived from the seed. It answers only requests addressed to localhost or a
    loopback address (the Host header), against DNS rebinding.

    \b
    Example: rehearse a job on a bad day
      bulk sandbox --data sample_data/org.json --port 8765 \\
          --rate-limit 5 --fail-rate 0.05 --applied-503-rate 0.02
      # in another terminal, paste the three export lines it printed, then:
      bulk apply jobs/mass-rename.toml
      curl -s http://127.0.0.1:8765/_sandbox/stats

    \b
    Or in one shell (it lets go of stdout after the three lines):
      eval "$(bulk sandbox --runs 500 &)"
    """
    if token_flag is not None:
        raise _Refused(f"--token is refused: a token on the command line is visible to anyone "
                       f"on this machine (ps) and stays in shell history; set {TOKEN_ENV} "
                       "in the environment instead")
    token = _token_from_env()
    data = options.get("data")
    if data is not None and not data.exists():
        from bulk.samples import shipped

        # `--data sample_data/org.json` as the README says, from wherever bulk is installed.
        options["data"] = shipped(data) or data
    if host == "localhost":
        host = "127.0.0.1"  # one socket, one port (localhost may also mean ::1)
    if not _is_loopback(host) and not allow_remote:
        raise _Refused(f"refusing to listen on non-loopback address {host!r} "
                       f"(the sandbox has no real security); add --allow-remote to do it anyway")
    try:
        faults = Faults(error_rate=options.pop("error_rate"), drop_rate=options.pop("drop_rate"),
                        applied_503_rate=options.pop("applied_503_rate"),
                        slow_rate=options.pop("slow_rate"), slow_ms=options.pop("slow_ms"))
        sandbox = Sandbox(SandboxConfig(faults=faults, token=token, allow_remote=allow_remote,
                                        **options), host=host, port=port)
    except (OrgDataError, ValueError) as exc:
        raise _Refused(str(exc)) from None
    if export_path is not None:
        try:
            save_org(sandbox.org(), export_path)
        except OSError as exc:
            raise click.ClickException(f"cannot write {export_path}: {exc.strerror}") from None
        _note(f"wrote {export_path}")
        return
    try:
        asyncio.run(_serve(sandbox))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        sys.exit(ExitCode.INTERRUPTED)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                                   ) from None


async def _serve(sandbox: Sandbox) -> None:
    await sandbox.start()
    try:
        # The token's own export line is the only place it is shown: it is what the line is
        # for. Quoted, since the shell evaluates these lines.
        click.echo(f"export TALLYFY_BASE_URL={shlex.quote(sandbox.base_url)}")
        click.echo(f"export TALLYFY_ORG_ID={shlex.quote(sandbox.org_id)}")
        click.echo(f"export TALLYFY_ACCESS_TOKEN={shlex.quote(sandbox.token)}")
        sys.stdout.flush()
        store = sandbox.store
        _note(f"{len(store.runs)} runs, {len(store.checklists)} templates, "
              f"{len(store.members)} members; look inside at {sandbox.url}/_sandbox/")
        _note(f"pid {os.getpid()}; stop with Ctrl-C or: kill {os.getpid()}")
        _let_go_of_stdout()  # after the notes: whoever waits for stdout's end can read them
        await _until_stopped()
    finally:
        await sandbox.stop()
    stats = sandbox.stats
    _note(f"stopped after {stats.requests} requests, {stats.writes} writes, "
          f"{stats.rate_limited} rate-limited")


def _let_go_of_stdout() -> None:
    """Point stdout at /dev/null once the exports are out, unless it is a terminal, so that
    ``eval "$(bulk sandbox &)"`` sees the end of the output and returns."""
    if sys.stdout.isatty():
        return
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)


if __name__ == "__main__":
    sandbox_command()
