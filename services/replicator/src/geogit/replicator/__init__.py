"""geogit replicator: keeps a secondary site's replicas current (DESIGN §5)."""
