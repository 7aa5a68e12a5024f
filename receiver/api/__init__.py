"""HTTP handlers and middlewares."""
