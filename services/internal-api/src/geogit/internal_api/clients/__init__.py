"""Clients for the other services the internal API calls."""
