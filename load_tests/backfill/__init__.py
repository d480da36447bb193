"""Browser backfill (extension E15) as simulated candidates do it: segments they make and upload."""
