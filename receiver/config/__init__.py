"""The rules file: models, loader, matchers, durations."""

from receiver.config.loader import ConfigError, Problem, load_rules, parse_rules, summarize
from receiver.config.matchers import Matcher, parse_matcher
from receiver.config.models import RulesConfig

__all__ = [
    "ConfigError",
    "Matcher",
    "Problem",
    "RulesConfig",
    "load_rules",
    "parse_matcher",
    "parse_rules",
    "summarize",
]
