"""geogit SSH gateway: Git over SSH on a site (DESIGN §3.3)."""
