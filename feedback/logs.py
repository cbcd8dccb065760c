"""Logging: one line per event on stderr, and nothing about who sent a request.

Access logs come from ``web.RequestLog``, never from the server (uvicorn runs with its access
log off). No log line carries a client address, a query string, a request body or a token.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own loggers: keep errors and lifecycle lines, drop its access log entirely.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").setLevel(level)
    # pgserver narrates every pg_ctl call at INFO; its warnings and errors still show.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # The scheduler logs every run at INFO; our jobs log their own outcome.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(level)))
