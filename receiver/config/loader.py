"""Load ``routing_rules.yaml``: YAML with line numbers, pydantic validation, cross-references."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from receiver.config.models import NOTIFY_KEYWORDS, RulesConfig
from receiver.config.shadowing import shadowed_rules, swallows

PathKey = tuple[str | int, ...]


# The line breaks PyYAML counts lines by (str.splitlines knows more, e.g. form feed).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass(frozen=True)
class Problem:
    """One configuration error, located by file, YAML path and line.

    A YAML syntax error has no YAML path; it has a column and the text of its line.
    """

    file: str
    path: str
    line: int | None
    message: str
    column: int | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            return f"{where}:{self.column}: {self.message}"
        return f"{where}: {self.path or '<root>'}: {self.message}"

    def excerpt(self) -> list[str]:
        """The offending line with a caret under the column, when known."""
        if self.source is None or not self.line or not self.column:
            return []
        # Tabs stay tabs under the text, so the caret lands under the right character.
        pad = "".join("\t" if ch == "\t" else " " for ch in self.source[: self.column - 1])
        gutter = " " * len(str(self.line))
        return [f" {self.line} | {self.source}", f" {gutter} | {pad}^"]


class ConfigError(Exception):
    """A rules file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def format_path(path: PathKey) -> str:
    """Render ``('rules', 3, 'matchers', 0)`` as ``rules[3].matchers[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], dupes: list[PathKey]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                dupes.append((*path, key))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, dupes)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, dupes)


class _Locator:
    def __init__(self, file: str, lines: dict[PathKey, int]) -> None:
        self.file = file
        self.lines = lines

    def problem(self, path: PathKey, message: str) -> Problem:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return Problem(self.file, format_path(path), self.lines.get(probe), message)


def _pydantic_problems(exc: ValidationError, locate: _Locator) -> Iterator[Problem]:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "[key]")
        # pydantic names the validator of Annotated fields in loc; drop function-ish parts.
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        yield locate.problem(loc, message)


def _cross_references(cfg: RulesConfig, locate: _Locator) -> Iterator[Problem]:
    people, teams, rotations = cfg.people, cfg.teams, cfg.rotations
    severities, categories = cfg.severities, cfg.categories

    def need(kind: str, name: str | None, pool: dict[str, Any], path: PathKey) -> Iterator[Problem]:
        if name is not None and name not in pool:
            known = ", ".join(sorted(pool)) or "none"
            yield locate.problem(path, f"unknown {kind} {name!r} (known: {known})")

    yield from need("severity", cfg.defaults.severity, severities, ("defaults", "severity"))
    yield from need("category", cfg.defaults.category, categories, ("defaults", "category"))
    for name, category in categories.items():
        yield from need("team", category.team, teams, ("categories", name, "team"))
    for name, team in teams.items():
        yield from need("rotation", team.rotation, rotations, ("teams", name, "rotation"))
        yield from need("person", team.lead, people, ("teams", name, "lead"))
    yield from need("person", cfg.roles.tech_lead, people, ("roles", "tech_lead"))
    yield from need("person", cfg.roles.project_manager, people, ("roles", "project_manager"))
    for name, rotation in rotations.items():
        for i, member in enumerate(rotation.members):
            yield from need("person", member, people, ("rotations", name, "members", i))
        if len(set(rotation.members)) != len(rotation.members):
            yield locate.problem(("rotations", name, "members"), "a member is listed twice")
        for i, override in enumerate(rotation.overrides):
            o_path: PathKey = ("rotations", name, "overrides", i)
            yield from need("person", override.person, people, (*o_path, "person"))
            if override.end <= override.start:
                yield locate.problem((*o_path, "to"), "'to' must be later than 'from'")
        yield from need("rotation", rotation.fallback, rotations, ("rotations", name, "fallback"))
        if rotation.fallback == name:
            yield locate.problem(
                ("rotations", name, "fallback"), "a rotation cannot fall back to itself"
            )
    yield from _fallback_cycles(cfg, locate)
    for key, steps in cfg.escalation.items():
        if key != "default":
            yield from need("severity", key, severities, ("escalation", key))
        for i, step in enumerate(steps):
            for j, target in enumerate(step.notify):
                target_path: PathKey = ("escalation", key, i, "notify", j)
                kind, _, ref = target.partition(":")
                if kind == "person" and ref:
                    yield from need("person", ref, people, target_path)
                elif kind == "rotation" and ref:
                    yield from need("rotation", ref, rotations, target_path)
                elif target not in NOTIFY_KEYWORDS:
                    yield locate.problem(
                        target_path,
                        f"unknown notify target {target!r} (use {', '.join(NOTIFY_KEYWORDS)}, "
                        "person:<id> or rotation:<name>)",
                    )
        afters = [step.after for step in steps]
        if afters != sorted(afters):
            yield locate.problem(("escalation", key), "steps must be in increasing 'after' order")
    missing = [s for s in severities if s not in cfg.escalation]
    if missing and "default" not in cfg.escalation:
        yield locate.problem(
            ("escalation",), f"no steps for {', '.join(missing)} and no 'default' policy"
        )
    for name in cfg.announcements.wording:
        if name != "default":
            yield from need("category", name, categories, ("announcements", name))
    if cfg.standup is not None and not cfg.channels.standup:
        yield locate.problem(("standup",), "the standup needs a channel: set channels.standup")
    if cfg.jira.postmortem:
        for i, sev in enumerate(cfg.jira.postmortem.severities):
            yield from need("severity", sev, severities, ("jira", "postmortem", "severities", i))
    yield from _report_references(cfg, locate, need)
    yield from _paging_references(cfg, locate, need)
    windows: dict[str, int] = {}
    for i, window in enumerate(cfg.maintenance):
        if window.name in windows:
            yield locate.problem(
                ("maintenance", i, "name"),
                f"duplicate window name {window.name!r} "
                f"(first at maintenance[{windows[window.name]}])",
            )
        windows.setdefault(window.name, i)
    seen: dict[str, int] = {}
    for i, rule in enumerate(cfg.rules):
        path: PathKey = ("rules", i)
        if rule.name in seen:
            yield locate.problem(
                (*path, "name"),
                f"duplicate rule name {rule.name!r} (first at rules[{seen[rule.name]}])",
            )
        seen.setdefault(rule.name, i)
        if rule.severity is not None and rule.severity_from is not None:
            yield locate.problem(path, "give either 'severity' or 'severity_from', not both")
        yield from need("severity", rule.severity, severities, (*path, "severity"))
        yield from need("category", rule.category, categories, (*path, "category"))
        if rule.severity_from:
            sf_path = (*path, "severity_from")
            for value, sev in rule.severity_from.map.items():
                yield from need("severity", sev, severities, (*sf_path, "map", value))
            yield from need(
                "severity", rule.severity_from.default, severities, (*sf_path, "default")
            )


Need = Callable[[str, "str | None", dict[str, Any], PathKey], Iterator[Problem]]


def _report_references(cfg: RulesConfig, locate: _Locator, need: Need) -> Iterator[Problem]:
    """What the ``reports`` section names must exist; its rule names are unique."""
    reports = cfg.reports
    yield from need(
        "severity", reports.default_severity, cfg.severities, ("reports", "default_severity")
    )
    yield from need(
        "category", reports.default_category, cfg.categories, ("reports", "default_category")
    )
    yield from need("rotation", reports.rotation, cfg.rotations, ("reports", "rotation"))
    seen: dict[str, int] = {}
    for i, rule in enumerate(reports.rules):
        path: PathKey = ("reports", "rules", i)
        if rule.name in seen:
            yield locate.problem(
                (*path, "name"),
                f"duplicate rule name {rule.name!r} (first at reports.rules[{seen[rule.name]}])",
            )
        seen.setdefault(rule.name, i)
        yield from need("severity", rule.severity, cfg.severities, (*path, "severity"))
        yield from need("category", rule.category, cfg.categories, (*path, "category"))
        yield from need(
            "category", rule.match.category, cfg.categories, (*path, "match", "category")
        )


CONTACT_KEYS = {"slack": "slack_id", "telegram": "telegram_id", "email": "email"}


def _paging_references(cfg: RulesConfig, locate: _Locator, need: Need) -> Iterator[Problem]:
    """Every channel a person's ``notify`` names has its address; heartbeats name a
    severity and a category the rules know."""
    for pid, person in cfg.people.items():
        if "notify" not in person.model_fields_set:
            continue  # the default [slack]: a person without slack_id is paged nowhere
        for i, channel in enumerate(person.notify):
            if person.address(channel) is None:
                yield locate.problem(
                    ("people", pid, "notify", i),
                    f"{pid} is paged by {channel} but has no {CONTACT_KEYS[channel]}",
                )
    for name, beat in cfg.heartbeats.items():
        path: PathKey = ("heartbeats", name)
        yield from need("severity", beat.severity, cfg.severities, (*path, "severity"))
        yield from need("category", beat.category, cfg.categories, (*path, "category"))
        why = swallows(beat.matchers, name)
        if why is not None:
            yield locate.problem(
                (*path, "matchers"), f"these matchers cannot be a heartbeat: {why}"
            )


def _fallback_cycles(cfg: RulesConfig, locate: _Locator) -> Iterator[Problem]:
    reported: set[str] = set()
    for start in cfg.rotations:
        chain = [start]
        current = cfg.rotations[start].fallback
        while current in cfg.rotations and current not in chain:
            chain.append(current)
            current = cfg.rotations[current].fallback
        if current == start and len(chain) > 1 and start not in reported:
            reported.update(chain)
            loop = " -> ".join([*chain, start])
            yield locate.problem(("rotations", start, "fallback"), f"fallback chain loops: {loop}")


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """A YAML syntax error at its line and column, with the text of that line."""
    mark = exc.problem_mark or exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
    context = exc.context_mark
    if (
        exc.problem
        and exc.context
        and context is not None
        and mark is not None
        and (context.line, context.column) != (mark.line, mark.column)
    ):
        message += f" ({exc.context} at line {context.line + 1}, column {context.column + 1})"
    if mark is None:
        return Problem(file, "", None, message)
    if mark.index >= len(text):
        return Problem(
            file, "", mark.line + 1, f"{message} at the end of the file", mark.column + 1
        )
    lines = _LINE_BREAK.split(text)
    source = lines[mark.line] if mark.line < len(lines) else None
    return Problem(file, "", mark.line + 1, message, mark.column + 1, source)


def _parse(text: str, file: str) -> tuple[RulesConfig, _Locator]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, text, file)]) from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        raise ConfigError([Problem(file, "", None, f"invalid YAML: {exc}")]) from None
    lines: dict[PathKey, int] = {}
    dupes: list[PathKey] = []
    if node is not None:
        _walk(node, (), lines, dupes)
    locate = _Locator(file, lines)
    problems = [locate.problem(path, "duplicate key") for path in dupes]
    if not isinstance(data, dict):
        raise ConfigError([*problems, locate.problem((), "the rules file must be a YAML mapping")])
    try:
        cfg = RulesConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, locate))
        raise ConfigError(problems) from None
    problems.extend(_cross_references(cfg, locate))
    if problems:
        raise ConfigError(problems)
    return cfg, locate


def parse_rules(text: str, file: str = "<string>") -> RulesConfig:
    """Parse and validate rules text; raises ConfigError listing every problem."""
    return _parse(text, file)[0]


def _warnings(cfg: RulesConfig, locate: _Locator) -> Iterator[Problem]:
    """What is valid but almost certainly not meant: rules that can never match."""
    for shadow in shadowed_rules(cfg.rules):
        rule, by = cfg.rules[shadow.index], cfg.rules[shadow.by]
        first = locate.problem(("rules", shadow.by), "")
        at = f"{first.file}:{first.line}" if first.line else first.file
        yield locate.problem(
            ("rules", shadow.index),
            f"warning: rule {rule.name!r} can never match: the earlier rule {by.name!r} "
            f"({at}, {first.path}) matches every alert it matches, and the first match wins",
        )


def parse_rules_with_warnings(
    text: str, file: str = "<string>"
) -> tuple[RulesConfig, list[Problem]]:
    """Like ``parse_rules``, and also what is valid but suspect, as warnings."""
    cfg, locate = _parse(text, file)
    return cfg, list(_warnings(cfg, locate))


def _read(path: str | Path) -> str:
    file = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(file, "", None, f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(file, "", None, "file is not UTF-8 text")]) from None


def load_rules(path: str | Path) -> RulesConfig:
    """Read and validate a rules file."""
    return parse_rules(_read(path), str(path))


def check_rules(path: str | Path) -> tuple[RulesConfig, list[Problem]]:
    """Read and validate a rules file; also return its warnings (for check-config)."""
    return parse_rules_with_warnings(_read(path), str(path))


def summarize(cfg: RulesConfig) -> str:
    """One line describing a valid rules file, for check-config."""
    return (
        f"{len(cfg.rules)} rules, {len(cfg.severities)} severities, "
        f"{len(cfg.categories)} categories, {len(cfg.teams)} teams, "
        f"{len(cfg.rotations)} rotations, {len(cfg.people)} people"
    )
