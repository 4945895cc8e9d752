"""Logging setup: one format, and a filter that scrubs tokens from every record (access logs included)."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

_TOKEN_PATTERN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_AUTH_PATTERN = re.compile(
    r"((?:authorization|token)[\"']?\s*[:=]\s*[\"']?(?:token|bearer)?\s*)[^\s\"',&]+", re.I
)


# The id of the request being served (set by app.http.request_id), added to every record as request_id.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def scrub(text: str) -> str:
    return _AUTH_PATTERN.sub(r"\1[secret]", _TOKEN_PATTERN.sub(r"\1[secret]", text))


class TokenScrubFilter(logging.Filter):
    """Rewrites records so no token reaches a log (uvicorn logs request lines with query strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Scrub the formatted message: scrubbing the format string alone can eat a `%s` placeholder
        # ("token=%s" -> "token=[secret]"), and logging then reports the unformatted args, token included.
        try:
            message = record.getMessage()
        except Exception:
            if isinstance(record.args, tuple):
                record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
            if isinstance(record.msg, str):
                record.msg = scrub(record.msg)
            return True
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


PLAIN_FORMAT = "[%(levelname)1.1s %(asctime)s %(name)s] %(message)s"


def configure_logging(level: str, log_format: str = "plain") -> dict[str, object]:
    """A logging dictConfig for uvicorn and the gateway, with token scrubbing on every handler."""
    formatter: dict[str, object] = {"()": JsonFormatter} if log_format == "json" else {"format": PLAIN_FORMAT}
    access_level = "INFO" if level.upper() == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"scrub": {"()": TokenScrubFilter}, "request_id": {"()": RequestIdFilter}},
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["scrub", "request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "": {"handlers": ["stderr"], "level": level.upper()},
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            # one line per request only when debugging (KG logs them at INFO; they dominate busy logs)
            "uvicorn.access": {"handlers": [], "level": access_level, "propagate": True},
        },
    }
