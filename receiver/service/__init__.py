"""The application layer: what the HTTP handlers and the background loops ask of the
receiver, between the pure domain and the store.

- ``incidents``: IncidentService: route, decide, render and commit one unit of work.
- ``rendering``: from decided changes to the instructions queued in the outbox.
- ``ingest``: group commit of webhooks; ``timers``, ``digest``: loops over stored due times.
- ``followup``: what the outbox worker asks after a delivery recorded an effect.
- ``rules``: the rules in force, reloaded by ``reload``.
- ``loops``: the one way a background loop runs, wakes and stops.
"""

from receiver.service.incidents import IncidentService
from receiver.service.units import IngestResult, NotFound

__all__ = ["IncidentService", "IngestResult", "NotFound"]
