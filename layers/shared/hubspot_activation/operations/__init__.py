"""The operator's routes: sync health, audience metadata, replay (the operations function).

It reads what the other two functions record (the ledger table and its sparse ``issues`` index,
the queues) and writes only audience metadata, replay messages and DLQ moves: nothing in
``ingest`` or ``upsert`` imports it.
"""
