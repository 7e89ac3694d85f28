"""Clients for the services behind the edge: the internal API and storage."""
