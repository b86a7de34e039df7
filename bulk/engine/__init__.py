"""The engine: reading rows, pacing, retrying, the worker pool and the ledger.

Nothing in here knows about Tallyfy; the Tallyfy layer plugs a row handler into it.
"""
