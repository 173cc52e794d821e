"""Reconcile: what HubSpot holds for the contacts the connector tracks, compared with the ledger,
and repaired through the flusher (docs/architecture.md, "When HubSpot changes")."""
