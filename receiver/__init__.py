"""Alert receiver: Alertmanager webhooks in, handled incidents out."""

__version__ = "0.1.0"
