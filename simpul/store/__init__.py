"""The durable store: messages, deliveries, ACKs, dead letters and audit events.

The store is also the queue in the embedded profile: a delivery row is a work item with a
lease. SQLite (WAL, synchronous=FULL) by default; PostgreSQL by URL.
"""
