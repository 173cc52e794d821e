"""The ingest function: HTTP requests in, ordered queue messages out."""
