"""bulk: a safe, resumable bulk-update runner for Tallyfy runs and templates."""

__version__ = "0.1.0"
