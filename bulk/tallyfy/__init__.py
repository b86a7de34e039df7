"""The Tallyfy layer: targets and their field schemas, the HTTP client, the row plan."""
