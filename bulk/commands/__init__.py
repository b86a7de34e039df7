"""The commands as library calls: settings in, exit code out. `cli.py` is a thin click skin
over these; apply.py, select.py and undo.py stand side by side."""
