"""Geo on the internal API: a secondary's read model, event feed and freshness rule, and the
primary's view of its secondaries' replication."""
