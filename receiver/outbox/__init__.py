"""The outbox: durable deliveries, worked off by background workers."""
