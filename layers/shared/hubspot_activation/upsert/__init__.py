"""The upsert function: queue messages in, HubSpot contacts and ledger records out."""
