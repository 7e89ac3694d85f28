"""A project's Git repository: where storage keeps it, ref names, a push's changes, HEAD."""
