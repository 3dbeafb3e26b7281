"""Lab-report submissions: uploads, content-addressed storage and downloads."""
