"""Showing a ledger to a person: `status_export.py` (bulk status and bulk export, as text,
CSV and JSONL) beside `html_report/` (the HTML report and the dry-run preview)."""
