"""HubSpot CRM client: versioned paths, error classification, rate governor, credentials."""
