"""Logging setup: one format, and a filter that scrubs tokens from every record (access logs included)."""

from __future__ import annotations

import logging
import re

_TOKEN_PATTERN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_AUTH_PATTERN = re.compile(
    r"((?:authorization|token)[\"']?\s*[:=]\s*[\"']?(?:token|bearer)?\s*)[^\s\"',&]+", re.I
)


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


def configure_logging(level: str) -> dict[str, object]:
    """A logging dictConfig for uvicorn and the gateway, with token scrubbing on every handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"scrub": {"()": TokenScrubFilter}},
        "formatters": {"plain": {"format": "[%(levelname)1.1s %(asctime)s %(name)s] %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["scrub"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "": {"handlers": ["stderr"], "level": level.upper()},
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
