"""Adapters that take beta testers' reports in from elsewhere (the e-mail mailbox)."""
