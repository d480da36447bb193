"""The archive: recordings in the prescribed layout, in S3 or a local folder, with a manifest each."""
