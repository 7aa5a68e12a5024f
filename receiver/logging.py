"""structlog setup: JSON lines in production, console rendering on request; the standard
library's records (aiohttp, asyncio, the JIRA and Slack clients) rendered the same way."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

# Below WARNING the libraries' records are chatter, and HTTP clients' debug lines carry
# request headers, tokens included.
LIBRARY_MIN_LEVEL = logging.WARNING


def _serialize(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _PrinterHandler(logging.Handler):
    """Emits through structlog's printer, whose per-stream lock keeps a standard-library
    line and a structlog line from interleaving."""

    def __init__(self, printer: structlog.PrintLogger) -> None:
        super().__init__()
        self._printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._printer.msg(self.format(record))
        except Exception:
            self.handleError(record)


def _aiohttp_exception_unquoted(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """aiohttp's parser exceptions quote the request's bytes (an Authorization header, say):
    of its records' exceptions keep the type and the frames, never the message."""
    record = event_dict.get("_record")
    exc_info = event_dict.get("exc_info")
    if (
        isinstance(record, logging.LogRecord)
        and record.name.startswith("aiohttp")
        and isinstance(exc_info, tuple)
        and exc_info[0] is not None
    ):
        del event_dict["exc_info"]
        frames = "".join(traceback.format_tb(exc_info[2]))
        event_dict["exception"] = f"{frames}{exc_info[0].__name__}"
    return event_dict


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """Configure structlog once for the process."""
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_serialize)
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    levelno = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = _PrinterHandler(structlog.PrintLogger(sys.stderr))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                stamp,
                _aiohttp_exception_unquoted,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # inside the object, never raw lines
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(levelno, LIBRARY_MIN_LEVEL))
    logging.captureWarnings(True)  # warnings too, instead of raw lines on stderr
