"""First run: create the first administrator of a new local database."""
