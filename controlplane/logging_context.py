"""Structured-log context: tenant, job and upload ids ride on every log record emitted while set.

with log_context(tenant_id=3, job_id=17):
    logger.info("training started")   # -> {"tenant_id": 3, "job_id": 17, ...} with LOG_FORMAT=json
"""

import contextlib
import contextvars
import logging

FIELDS = ("tenant_id", "job_id", "upload_id")
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("log_context", default={})  # noqa: B039


@contextlib.contextmanager
def log_context(**ids):
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def set_log_tenant(tenant_id: int) -> None:
    """Attach the tenant to the rest of this request's (or task's) log records."""
    _context.set({**_context.get(), "tenant_id": tenant_id})


def clear_log_context() -> None:
    _context.set({})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        values = _context.get()
        for field in FIELDS:
            setattr(record, field, values.get(field))
        return True


class LogContextMiddleware:
    """Starts every request with an empty context, so ids never leak between requests of a thread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        clear_log_context()
        return self.get_response(request)
