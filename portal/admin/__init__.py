"""Administration: dashboard, terms/courses/sections, bulk CSV import and CSV exports."""
