"""The store core's part for maintenance windows made through the API (``SqlStore``
mixes it in): written on their own, ended early with a unit of work (which releases the
incidents they hold in the same transaction), read for ingest and the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from receiver.domain.maintenance import API_PREFIX, Window
from receiver.domain.model import Incident
from receiver.jsonfast import dumps, loads
from receiver.store.rows import incident_from_row, utc
from receiver.store.sql import Backend, Executor, Statements
from receiver.store.unit import UnitOfWork

UTC_ZONE = ZoneInfo("UTC")


def window_from_row(row: Sequence[Any]) -> Window:
    """An API window from a row of MAINTENANCE_COLUMNS."""
    return Window(
        name=f"{API_PREFIX}{row[0]}",
        matchers=tuple(loads(row[1])),
        start=utc(row[2]),
        end=utc(row[3]),
        zone=UTC_ZONE,
        reason=row[4],
        id=int(row[0]),
        by=row[5],
        ended_by=row[6],
    )


class MaintenancePart:
    """API maintenance windows."""

    backend: Backend
    sql: Statements

    async def add_maintenance(
        self,
        matchers: Sequence[str],
        starts_at: datetime,
        ends_at: datetime,
        reason: str,
        by: str,
        now: datetime,
    ) -> int:
        sql = self.sql
        values = (dumps(list(matchers)), starts_at.timestamp(), ends_at.timestamp(), reason, by,
                  now.timestamp())  # fmt: skip

        async def insert(ex: Executor) -> int:
            [(window_id,)] = await ex.fetch(sql.insert_maintenance, *values)
            return int(window_id)

        return await self.backend.run(insert)

    async def maintenance_windows(self, ending_after: datetime) -> list[Window]:
        rows = await self.backend.query(self.sql.maintenance_windows, ending_after.timestamp())
        return [window_from_row(r) for r in rows]

    async def get_maintenance(self, window_id: int) -> Window | None:
        rows = await self.backend.query(self.sql.get_maintenance, window_id)
        return window_from_row(rows[0]) if rows else None

    async def held_by(self, window: str) -> list[Incident]:
        return [incident_from_row(r) for r in await self.backend.query(self.sql.held_by, window)]

    async def _end_window(self, ex: Executor, unit: UnitOfWork) -> bool:
        """The window a unit ends early; False if it had ended meanwhile (a Conflict)."""
        assert unit.end_window is not None
        window_id, at, by = unit.end_window
        return await ex.execute(self.sql.end_maintenance, at.timestamp(), by, window_id) == 1
