"""Audiences as HubSpot MANUAL lists: membership changes buffered per list in the ledger
(``ledger.list_buffer``) and drained in large ``add-and-remove`` chunks (``service``)."""
