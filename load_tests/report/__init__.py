"""A run's report as files: report.json and the summary printed (json_report.py), and the one-page
HTML verdict with its plots (html_report.py). What goes in it is put together in judge/assemble.py."""
