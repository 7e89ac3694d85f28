"""geogit storage: bare repositories on disk behind gRPC (Gitaly's role)."""
