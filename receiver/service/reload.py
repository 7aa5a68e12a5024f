"""Rules reload (``POST /-/reload``, SIGHUP): a new file goes in force only if it is valid and
keeps every severity that an open incident has."""

from __future__ import annotations

from receiver.config.loader import Problem
from receiver.config.models import RulesConfig
from receiver.service.rules import RulesHolder
from receiver.store.base import OPEN, Store

NAMED_INCIDENTS = 20


async def reload_rules(rules: RulesHolder, store: Store) -> RulesConfig:
    """Load the rules file and put it in force, or refuse it (ConfigError, old rules kept).

    A file that drops a severity still held by open incidents is refused: their policy
    (ack timeout, priority, paging) would be gone, and the next alert's severity could not be
    compared with theirs, so a lowering would pass for a raise.
    """
    candidate = rules.load()
    counts = await store.open_counts()
    in_use = sorted({severity for severity, _ in counts})
    dropped = [severity for severity in in_use if severity not in candidate.severities]
    if not dropped:
        return rules.install(candidate)
    problems = []
    for severity in dropped:
        held = await store.list_incidents(OPEN, severity, NAMED_INCIDENTS, None)
        held.sort(key=lambda incident: incident.id or 0)
        named = ", ".join(f"#{i.id} ({i.status.value})" for i in held)
        more = sum(n for (sev, _), n in counts.items() if sev == severity) - len(held)
        problems.append(
            Problem(
                str(rules.path),
                "severities",
                None,
                f"severity {severity!r} is removed but open incidents have it: {named}"
                + (f" and {more} more" if more > 0 else "")
                + "; keep it until they are resolved",
            )
        )
    rules.refuse(problems)
