"""The internal API: routers for this site's gateways, storage hooks and replicator (internal
JWT), and for the secondaries that read the event store (Geo token)."""
