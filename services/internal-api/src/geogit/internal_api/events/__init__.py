"""The site's event store: the transactional outbox, the events changes write to it, and the
relay that publishes it to Kafka."""
