"""SQLite storage: acknowledgements, check-run history, audit log."""
