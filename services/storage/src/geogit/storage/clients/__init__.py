"""Clients for the services storage calls."""
