"""Runtime library of hubspot-activation, shared by the ingest and upsert functions (Lambda layer)."""
