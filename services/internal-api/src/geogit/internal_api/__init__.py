"""geogit."""
