"""The Geo status page at /-/geo: server-rendered HTML for operators (issue 13)."""
