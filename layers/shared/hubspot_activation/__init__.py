"""Runtime library of hubspot-activation, shared by the ingest, merge, flush and operations
functions (Lambda layer)."""
