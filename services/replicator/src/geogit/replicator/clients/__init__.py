"""Clients for the services the replicator calls: its site's internal API and storage."""
