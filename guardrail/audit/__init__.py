"""The audit log: tables, events, the durable writer, queries and migrations."""
