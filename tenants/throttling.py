"""Throttling of failed authentication, per client address and per API-key prefix.

Failures are counted in the shared cache over a fixed window. Once a counter passes its limit the
address (or prefix) is refused with 429 and Retry-After until the window ends, without checking the
credentials. Each process also remembers blocks it has seen, so the check on the hot path is a dict
lookup, not a cache round trip: a valid key from an unblocked address costs nothing extra.
"""

import threading
import time

from django.conf import settings
from django.core.cache import cache

_local_blocks: dict[str, float] = {}  # "ip:1.2.3.4" / "prefix:cp12ab" -> monotonic time the block ends
_lock = threading.Lock()
_monotonic = time.monotonic  # a name of its own, so that tests can move this clock alone


def client_address(request) -> str:
    """The caller's address; with NUM_PROXIES trusted proxies, taken from X-Forwarded-For."""
    proxies = getattr(settings, "NUM_PROXIES", 0)
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "unknown")


def auth_failure_subjects(request, api_key: str) -> list[str]:
    """What a failed API-key authentication counts against: the client address and the key's prefix."""
    return [f"ip:{client_address(request)}", f"prefix:{api_key.partition('_')[0][:16]}"]


def _limits() -> dict[str, int]:
    return {
        "ip": settings.AUTH_FAILURE_LIMIT_PER_ADDRESS,
        "prefix": settings.AUTH_FAILURE_LIMIT_PER_PREFIX,
    }


def any_blocked() -> bool:
    """Whether this process knows of any block in force: lets a hot path skip building its subjects. (Expired
    blocks are dropped by the next `blocked_for` call, so this turns false again once they have all ended.)"""
    return bool(_local_blocks)


def blocked_for(subjects: list[str]) -> int | None:
    """Seconds to wait if any subject ("ip:…", "prefix:…") is blocked, else None. Drops every expired block,
    including those of callers that never came back."""
    if not _local_blocks:
        return None
    now = _monotonic()
    expired = [subject for subject, until in list(_local_blocks.items()) if until <= now]
    if expired:
        with _lock:
            for subject in expired:
                if _local_blocks.get(subject, now + 1) <= now:
                    del _local_blocks[subject]
    wait = 0.0
    for subject in subjects:
        until = _local_blocks.get(subject)
        if until is not None and until > now:
            wait = max(wait, until - now)
    return int(wait) + 1 if wait else None


def record_failure(subjects: list[str]) -> int | None:
    """Count a failed attempt; return the seconds to wait when this failure crossed a limit."""
    window = settings.AUTH_FAILURE_WINDOW_SECONDS
    window_index = int(time.time() // window)
    seconds_left = window - (time.time() % window)
    limits = _limits()
    wait = None
    for subject in subjects:
        kind = subject.split(":", 1)[0]
        key = f"authfail:{window_index}:{subject}"
        if cache.add(key, 1, window + 5):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, window + 5)
                count = 1
        if count > limits[kind]:
            with _lock:
                _local_blocks[subject] = _monotonic() + seconds_left
            wait = int(seconds_left) + 1
    return wait


def reset_local_blocks() -> None:
    """Forget this process's remembered blocks (tests)."""
    with _lock:
        _local_blocks.clear()
