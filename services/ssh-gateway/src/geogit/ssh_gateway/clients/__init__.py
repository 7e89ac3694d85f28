"""Clients for the services the gateway calls: its site's internal API."""
