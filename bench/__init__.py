"""geogit benchmarks (`make bench`): measurements against plain-git anchors, not tests."""
