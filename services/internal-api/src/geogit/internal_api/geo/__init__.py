"""Geo on the internal API: other sites' Geo tokens checked on the primary (`auth`), the
primary's view of its secondaries' replication, and a secondary's read model, event feed,
freshness rule and routing (serve, proxy or redirect)."""
