"""Reading a ledger back as a picture: the HTML report, errors grouped by cause, and the
dry-run preview. Everything here aggregates in SQL, so a ledger of a million rows is
read in bounded memory."""
