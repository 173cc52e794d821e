"""The sync: the merge function (queue messages into the contacts' desired states in the ledger)
and the flush function (pending contacts to HubSpot, 100 a call)."""
