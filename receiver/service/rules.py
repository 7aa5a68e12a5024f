"""The rules in force, swapped atomically on reload; a bad file never replaces good rules."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import structlog

from receiver.config.loader import ConfigError, Problem, load_rules, summarize
from receiver.config.models import RulesConfig
from receiver.domain.routing import Router
from receiver.metrics import Metrics

log = structlog.get_logger("receiver.config")


class RulesHolder:
    """Holds the current RulesConfig and reloads it from its file."""

    def __init__(
        self, path: str | Path, metrics: Metrics, rules: RulesConfig | None = None
    ) -> None:
        self.path = Path(path)
        self.metrics = metrics
        self._rules = rules if rules is not None else load_rules(self.path)
        self.router = Router(self._rules)
        self._loaded()

    def _loaded(self) -> None:
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set_to_current_time()
        cfg = self._rules
        self.metrics.prime(
            list(cfg.severities),
            list(cfg.categories),
            {severity: len(cfg.steps_for(severity)) for severity in cfg.severities},
        )

    @property
    def current(self) -> RulesConfig:
        """The rules in force."""
        return self._rules

    def load(self) -> RulesConfig:
        """Read the file again without putting it in force; an invalid one is refused."""
        try:
            return load_rules(self.path)
        except ConfigError as exc:
            self.refuse(exc.problems)
        raise AssertionError("unreachable")

    def refuse(self, problems: list[Problem]) -> NoReturn:
        """Keep the old rules: log and export the refusal, and raise ConfigError."""
        self.metrics.config_reload_ok.set(0)
        log.error("rules_reload_failed", path=str(self.path), problems=[str(p) for p in problems])
        raise ConfigError(problems)

    def install(self, rules: RulesConfig) -> RulesConfig:
        """Put rules that were loaded and checked in force."""
        self._rules, self.router = rules, Router(rules)
        self._loaded()
        log.info("rules_reloaded", path=str(self.path), summary=summarize(rules))
        return rules
