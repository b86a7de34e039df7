"""A faithful local Tallyfy API, hazards included: the sandbox.

It serves runs and templates (GET, PUT, lists) the way production does, including the
dangerous parts (a PUT without ``users``/``groups`` wipes them, unknown keys vanish with a
200, templates need ``title``), a per-token quota answered with 429 + ``Retry-After`` (and
Laravel's ``X-RateLimit-Limit``/``-Remaining`` on every answer, ``-Reset`` on a 429, unless
``rate_headers=False``), and
seeded faults (latency, 5xx pages, dropped connections, writes applied but answered 503,
answers slower than a client's timeout). ``bulk sandbox`` runs it from a shell; tests and
benchmarks start it in-process::

    from bulk.sandbox import Sandbox, SandboxConfig, Faults

    async with Sandbox(SandboxConfig(runs=200, seed=1)) as sb:
        sb.base_url, sb.org_id, sb.token    # what a client needs
        sb.store.runs[run_id]                # the data, live
        sb.stats.writes_per_record           # what happened
        sb.faults = Faults(error_rate=0.1)   # a bad day, from now on
"""

from bulk.sandbox._config import Faults, SandboxConfig
from bulk.sandbox._data import OrgDataError, dump_org, generate_org, load_org, save_org
from bulk.sandbox._server import Sandbox
from bulk.sandbox._stats import JournalEntry, Stats
from bulk.sandbox._store import Store

__all__ = [
    "Faults",
    "JournalEntry",
    "OrgDataError",
    "Sandbox",
    "SandboxConfig",
    "Stats",
    "Store",
    "dump_org",
    "generate_org",
    "load_org",
    "save_org",
]
