"""The staff-facing side: dashboard, funder summaries and signatures, schedules."""
