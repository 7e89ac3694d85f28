"""geogit edge proxy: the HTTP front door of a site (Workhorse's role, DESIGN §3.1)."""
