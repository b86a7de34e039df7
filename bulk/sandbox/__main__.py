"""``python -m bulk.sandbox``: the same as ``bulk sandbox``."""

from bulk.sandbox.cli import sandbox_command

sandbox_command(prog_name="python -m bulk.sandbox")
