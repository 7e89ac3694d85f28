"""The `geogit` command and the dev stack it runs (`geogit dev up|down|status|demo`).

The pieces are importable on their own so end-to-end tests can start real sites the same way
the dev stack does: `Site` (one site's storage, internal API and edge proxy), `Supervisor`
(child processes that another shell can stop), `ThrowawayPostgres` and the stack file.
"""
