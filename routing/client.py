"""Routing client for the small-model control plane (standard library only).

A tenant's service vendors this single file. It fetches the tenant's routing table, keeps it fresh in a
background thread (ETag / 304), decides per request in microseconds whether the small model's answer is
kept or the request falls back to the frontier model, and reports outcomes back in batches.

    client = RoutingClient("https://control.example.com", api_key="sk_...")
    decision = client.decide("ticket_classification", confidence=0.91, request_key=request_id)
    if decision.route == "small": ...
    client.report("ticket_classification", decision.route, 0.91, fell_back=decision.route != "small")
    client.close()

The decision logic (``Decision``, ``CompiledTable``, ``decide_from_table``) lives here, and only here:
``routing/decision.py`` re-exports it so the server's ``/api/v1/routing/decide`` endpoint and this client
decide identically, while this file stays self-contained for vendoring.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request

__all__ = [
    "ROUTE_FRONTIER",
    "ROUTE_SMALL",
    "CompiledTable",
    "Decision",
    "RoutingClient",
    "RoutingError",
    "decide_from_table",
]

logger = logging.getLogger(__name__)

ROUTE_SMALL = "small"
ROUTE_FRONTIER = "frontier"
_ROUTES = frozenset((ROUTE_SMALL, ROUTE_FRONTIER))

# Canary buckets: a request key hashes into one of 10,000 buckets, so a canary share has a resolution of
# 0.01 percentage points and a given key stays on the same side as long as the share does not shrink.
_CANARY_BUCKETS = 10000
# The contract caps one outcomes request at 1000 items.
_MAX_OUTCOMES_PER_REQUEST = 1000

_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes
_random = random.random


class RoutingError(Exception):
    """The control plane could not be reached or answered something unusable."""


# ---------------------------------------------------------------------------------------------------------
# Decision logic (shared with the server through routing/decision.py)
# ---------------------------------------------------------------------------------------------------------


class Decision(collections.namedtuple("Decision", "route model threshold reason shadow")):
    """Outcome of one routing decision (an immutable tuple).

    route: "small" (keep the small model's answer) or "frontier".
    model: the model that answers ("tickets-v2" for small, the fallback such as "gpt-4o" for frontier;
           None when the table names none).
    threshold: the rule's confidence threshold, None when no rule applied.
    reason: "no_table", "not_in_scope", "canary_excluded", "shadow", "below_threshold", "above_threshold".
    shadow: True when the caller should also run the small model and report both answers.
    """

    __slots__ = ()


def _check_confidence(confidence):
    """Return the confidence as a float (or None); ValueError unless it is a number in [0, 1]."""
    if confidence is None:
        return None
    if confidence.__class__ is bool or not isinstance(confidence, (int, float)):
        # bool is an int subclass, but True/False as a confidence is a caller bug, not 1.0/0.0.
        raise ValueError(f"confidence must be a number in [0, 1] or None, got {confidence!r}")
    confidence = float(confidence)
    if not 0.0 <= confidence <= 1.0:  # also rejects NaN
        raise ValueError(f"confidence must be in [0, 1], got {confidence!r}")
    return confidence


def _canary_bucket(task: str, request_key) -> int:
    """The request key's canary bucket in [0, 10000); the same formula on client and server."""
    digest = _blake2b(f"{task}:{request_key}".encode(), digest_size=8).digest()
    return _from_bytes(digest, "big") % _CANARY_BUCKETS


class CompiledTable:
    """A routing table compiled once into per-task tuples so that ``decide()`` is a dict lookup.

    Every possible answer for a rule is a prebuilt immutable ``Decision``; ``decide()`` only picks one.
    """

    __slots__ = (
        "_not_in_scope",
        "_rules",
        "default_model",
        "default_route",
        "published_at",
        "raw",
        "tenant",
        "version",
    )

    def __init__(
        self,
        rules: dict,
        *,
        version: int = 0,
        tenant=None,
        published_at=None,
        default_route: str = ROUTE_FRONTIER,
        default_model=None,
        raw=None,
    ):
        self.version = version
        self.tenant = tenant
        self.published_at = published_at
        self.default_route = default_route
        self.default_model = default_model
        self.raw = raw
        self._rules = rules
        self._not_in_scope = Decision(default_route, default_model, None, "not_in_scope", False)

    @classmethod
    def from_table(cls, table: dict) -> CompiledTable:
        """Compile the control plane's JSON table; ValueError when it does not follow the contract."""
        if not isinstance(table, dict):
            raise ValueError(f"routing table must be a JSON object, got {type(table).__name__}")
        version = table.get("version", 0)
        if version.__class__ is bool or not isinstance(version, int) or version < 0:
            raise ValueError(f"routing table 'version' must be a non-negative integer, got {version!r}")
        default = table.get("default")
        if default is None:
            default = {}
        if not isinstance(default, dict):
            raise ValueError("routing table 'default' must be an object")
        default_route = default.get("route") or ROUTE_FRONTIER
        if default_route not in _ROUTES:
            raise ValueError(f"routing table default route must be 'small' or 'frontier', got {default_route!r}")
        default_model = default.get("model")
        rules_in = table.get("rules")
        if rules_in is None:
            rules_in = {}
        if not isinstance(rules_in, dict):
            raise ValueError("routing table 'rules' must be an object keyed by task slug")
        rules = {}
        for task, rule in rules_in.items():
            rules[task] = cls._compile_rule(task, rule, default_model)
        return cls(
            rules,
            version=version,
            tenant=table.get("tenant"),
            published_at=table.get("published_at"),
            default_route=default_route,
            default_model=default_model,
            raw=table,
        )

    @staticmethod
    def _compile_rule(task, rule, default_model) -> tuple:
        where = f"routing table rule {task!r}"
        if not isinstance(task, str) or not task:
            raise ValueError(f"{where}: task slug must be a non-empty string")
        if not isinstance(rule, dict):
            raise ValueError(f"{where}: must be an object")
        threshold = rule.get("threshold")
        if threshold.__class__ is bool or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{where}: 'threshold' must be a number in [0, 1], got {threshold!r}")
        threshold = float(threshold)
        canary = rule.get("canary", 100)
        if canary is None:
            canary = 100
        if canary.__class__ is bool or not isinstance(canary, (int, float)) or not 0 <= canary <= 100:
            raise ValueError(f"{where}: 'canary' must be a percentage in [0, 100], got {canary!r}")
        canary_limit = round(canary * 100)  # bucket < limit -> in the canary
        shadow = bool(rule.get("shadow", False))
        small_model = rule.get("model_version")
        fallback = rule.get("fallback") or default_model
        return (
            threshold,
            canary_limit,
            shadow,
            task + ":",
            Decision(ROUTE_SMALL, small_model, threshold, "above_threshold", False),
            Decision(ROUTE_FRONTIER, fallback, threshold, "below_threshold", False),
            Decision(ROUTE_FRONTIER, fallback, threshold, "canary_excluded", False),
            Decision(ROUTE_FRONTIER, fallback, threshold, "shadow", True),
        )

    @property
    def tasks(self) -> frozenset:
        """Task slugs that have a rule (are in scope)."""
        return frozenset(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"<CompiledTable tenant={self.tenant!r} version={self.version} rules={len(self._rules)}>"

    def decide(self, task: str, confidence, request_key=None) -> Decision:
        """Route one request; ValueError unless confidence is None or a number in [0, 1].

        Order: not in scope -> canary -> shadow -> threshold (confidence >= threshold keeps the small model).
        """
        if confidence.__class__ is not float:
            confidence = _check_confidence(confidence)
        elif not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {confidence!r}")
        rule = self._rules.get(task)
        if rule is None:
            return self._not_in_scope
        threshold, canary_limit, shadow, prefix, above, below, excluded, shadowed = rule
        if canary_limit < _CANARY_BUCKETS:
            if request_key is None:
                # No key to hash: an unbiased draw keeps the share right, at the cost of stickiness.
                bucket = int(_random() * _CANARY_BUCKETS)
            elif request_key.__class__ is str:
                bucket = (
                    _from_bytes(_blake2b((prefix + request_key).encode(), digest_size=8).digest(), "big")
                    % _CANARY_BUCKETS
                )
            else:
                bucket = _canary_bucket(task, request_key)
            if bucket >= canary_limit:
                return excluded
        if shadow:
            return shadowed
        if confidence is not None and confidence >= threshold:
            return above
        return below


class _NoTable:
    """Stand-in until a table has been loaded: everything goes to the frontier model."""

    __slots__ = ()
    version = None
    tenant = None
    raw = None
    tasks = frozenset()
    _decision = Decision(ROUTE_FRONTIER, None, None, "no_table", False)

    def decide(self, task, confidence, request_key=None) -> Decision:
        if confidence.__class__ is not float:
            _check_confidence(confidence)
        elif not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {confidence!r}")
        return self._decision


_NO_TABLE = _NoTable()


def decide_from_table(table: dict, task: str, confidence, request_key=None) -> Decision:
    """Decide from a raw table dict (compiles it each call; keep a CompiledTable for repeated use)."""
    return CompiledTable.from_table(table).decide(task, confidence, request_key)


# ---------------------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------------------


class RoutingClient:
    """Fetches, caches and refreshes a tenant's routing table; decides locally; reports outcomes.

    Thread-safe. ``decide()`` takes no lock: the compiled table is replaced by one reference assignment.
    The control plane being down never raises into ``decide()`` or ``report()``: the last good table keeps
    serving (or the frontier default, reason "no_table", when none was ever loaded).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        refresh_seconds: float = 30,
        timeout: float = 5.0,
        report_batch_size: int = 200,
        report_interval: float = 2.0,
        start: bool = True,
        *,
        max_queue_size: int = 10000,
        max_send_attempts: int = 4,
        retry_backoff: float = 0.5,
        user_agent: str = "smallmodel-routing-client/1",
    ):
        if not base_url:
            raise ValueError("base_url is required")
        if not api_key:
            raise ValueError("api_key is required")
        if refresh_seconds <= 0 or timeout <= 0 or report_interval <= 0:
            raise ValueError("refresh_seconds, timeout and report_interval must be positive")
        if not 1 <= report_batch_size <= _MAX_OUTCOMES_PER_REQUEST:
            raise ValueError(f"report_batch_size must be in [1, {_MAX_OUTCOMES_PER_REQUEST}]")
        if max_queue_size < 1 or max_send_attempts < 1:
            raise ValueError("max_queue_size and max_send_attempts must be at least 1")
        if not base_url.startswith(("http://", "https://")):
            # urlopen would also open file: and ftp: URLs; only the control plane's HTTP API is meant.
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        base = base_url.rstrip("/")
        self.table_url = base + "/api/v1/routing/table"
        self.outcomes_url = base + "/api/v1/routing/outcomes"
        self.refresh_seconds = float(refresh_seconds)
        self.timeout = float(timeout)
        self.report_batch_size = int(report_batch_size)
        self.report_interval = float(report_interval)
        self.max_send_attempts = int(max_send_attempts)
        self.retry_backoff = float(retry_backoff)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }

        self._table = _NO_TABLE  # replaced whole; read without a lock by decide()
        self._etag = None
        self._refresh_lock = threading.Lock()
        self._consecutive_fetch_errors = 0
        self.last_error = None  # str of the last table fetch error, None after a good fetch
        self.last_refresh_at = None  # time.time() of the last good answer (200 or 304)

        self._queue = collections.deque()
        self._max_queue_size = int(max_queue_size)
        self._queue_lock = threading.Lock()  # held for an append/popleft only; never across I/O
        self._send_lock = threading.Lock()  # one batch sender at a time (background thread or flush())
        self._wake_sender = threading.Event()

        self._stats = dict.fromkeys(
            ("fetches", "not_modified", "errors", "reports_sent", "reports_dropped", "send_errors"), 0
        )
        self._stop = threading.Event()
        self._closed = False
        self._refresh_thread = None
        self._sender_thread = None
        if start:
            self.start()

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the table once (synchronously, errors only logged) and start the background threads."""
        if self._closed:
            raise RuntimeError("RoutingClient is closed")
        if self._refresh_thread is not None:
            return
        self._refresh_quietly()
        self._refresh_thread = threading.Thread(target=self._refresh_loop, name="routing-refresh", daemon=True)
        self._sender_thread = threading.Thread(target=self._sender_loop, name="routing-reports", daemon=True)
        self._refresh_thread.start()
        self._sender_thread.start()

    def close(self, timeout: float = 5.0) -> bool:
        """Flush outstanding reports (up to ``timeout`` seconds) and stop the threads; True if all were sent."""
        if self._closed:
            return not self._queue
        self._closed = True
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake_sender.set()
        flushed = self.flush(timeout=max(0.0, deadline - time.monotonic()))
        for thread in (self._sender_thread, self._refresh_thread):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._queue_lock:
            unsent = len(self._queue)
            self._queue.clear()
            self._stats["reports_dropped"] += unsent
        if unsent:
            logger.warning("routing client closed with %d outcome reports unsent (dropped)", unsent)
        return flushed and not unsent

    def __enter__(self) -> RoutingClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the hot path --------------------------------------------------------------------------------------

    def decide(self, task: str, confidence, request_key=None) -> Decision:
        """Route one request locally from the cached table; ValueError only for a confidence outside [0, 1]."""
        return self._table.decide(task, confidence, request_key)

    @property
    def table_version(self):
        """Version of the table in use; None when none has been loaded."""
        return self._table.version

    @property
    def table(self):
        """The raw table dict in use (do not mutate); None when none has been loaded."""
        return self._table.raw

    @property
    def compiled_table(self):
        """The CompiledTable in use; None when none has been loaded."""
        table = self._table
        return None if table is _NO_TABLE else table

    @property
    def etag(self):
        return self._etag

    @property
    def stats(self) -> dict:
        """Counters: fetches (table requests made), not_modified (304s), errors (failed table fetches),
        reports_sent, reports_dropped (queue overflow, rejected or undeliverable), send_errors (failed
        outcome POST attempts), reports_queued (waiting now)."""
        stats = dict(self._stats)
        stats["reports_queued"] = len(self._queue)
        return stats

    def load_table(self, table: dict, etag: str | None = None) -> None:
        """Serve ``table`` (a dict in the contract's shape) now, e.g. a copy cached on disk for a cold start
        while the control plane is unreachable; ValueError when it is malformed. The next refresh replaces it."""
        compiled = CompiledTable.from_table(table)
        with self._refresh_lock:
            self._table = compiled
            self._etag = etag

    # -- table refresh -------------------------------------------------------------------------------------

    def refresh(self, raise_on_error: bool = False) -> bool:
        """Fetch the table now (If-None-Match); True if it changed. Errors keep the current table and are
        logged (and raised as RoutingError when ``raise_on_error``)."""
        with self._refresh_lock:
            try:
                changed = self._fetch()
            except RoutingError as exc:
                self._stats["errors"] += 1
                self._consecutive_fetch_errors += 1
                self.last_error = str(exc)
                # A control plane outage would otherwise log every refresh_seconds from every replica.
                if self._consecutive_fetch_errors in (1, 10) or self._consecutive_fetch_errors % 100 == 0:
                    logger.warning(
                        "routing table refresh failed (%d in a row), serving %s: %s",
                        self._consecutive_fetch_errors,
                        self._describe_table(),
                        exc,
                    )
                if raise_on_error:
                    raise
                return False
            if self._consecutive_fetch_errors:
                logger.info("routing table refresh recovered after %d failures", self._consecutive_fetch_errors)
            self._consecutive_fetch_errors = 0
            self.last_error = None
            self.last_refresh_at = time.time()
            return changed

    def _describe_table(self) -> str:
        table = self._table
        return "no table (frontier default)" if table is _NO_TABLE else f"last good table version {table.version}"

    def _fetch(self) -> bool:
        headers = dict(self._headers)
        if self._etag is not None and self._table is not _NO_TABLE:
            headers["If-None-Match"] = self._etag
        request = urllib.request.Request(self.table_url, headers=headers, method="GET")  # noqa: S310 - scheme checked in __init__
        self._stats["fetches"] += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = response.status
                body = response.read()
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                exc.close()
                self._stats["not_modified"] += 1
                return False
            detail = _error_detail(exc)
            exc.close()
            if exc.code in (401, 403):
                raise RoutingError(f"GET {self.table_url}: HTTP {exc.code}, the API key was rejected{detail}") from None
            raise RoutingError(f"GET {self.table_url}: HTTP {exc.code}{detail}") from None
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as exc:  # ValueError: http.client.InvalidURL etc.
            raise RoutingError(f"GET {self.table_url}: {exc}") from None
        if status == 304:
            self._stats["not_modified"] += 1
            return False
        if status != 200:
            raise RoutingError(f"GET {self.table_url}: unexpected HTTP {status}")
        try:
            compiled = CompiledTable.from_table(json.loads(body))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise RoutingError(f"GET {self.table_url}: unusable routing table: {exc}") from None
        previous = self._table
        changed = previous is _NO_TABLE or previous.raw != compiled.raw
        self._table = compiled  # one reference assignment: decide() sees the old or the new table, whole
        self._etag = etag
        if changed:
            logger.info("routing table version %s loaded (%d rules)", compiled.version, len(compiled))
        return changed

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:  # a background refresh must never kill its thread
            logger.exception("unexpected error refreshing the routing table")

    def _refresh_loop(self) -> None:
        while True:
            if self._consecutive_fetch_errors:
                # Retry sooner after a failure (1 s, 2 s, 4 s ... capped at refresh_seconds).
                delay = min(self.refresh_seconds, 2.0 ** (min(self._consecutive_fetch_errors, 16) - 1))
            else:
                delay = self.refresh_seconds
            # +-10% jitter so that many replicas started together do not refresh in lockstep.
            if self._stop.wait(delay * random.uniform(0.9, 1.1)):
                return
            self._refresh_quietly()

    # -- outcome reports -----------------------------------------------------------------------------------

    def report(
        self,
        task: str,
        route: str,
        confidence,
        fell_back: bool,
        input=None,
        small_output=None,
        frontier_output=None,
        latency_ms=None,
        usage=None,
        request_key=None,
    ) -> None:
        """Queue one outcome for the background sender; never blocks (drops the oldest when full).

        ValueError for an invalid task, route or confidence (one bad item would get its batch rejected).
        """
        if not isinstance(task, str) or not task:
            raise ValueError(f"task must be a non-empty string, got {task!r}")
        if route not in _ROUTES:
            raise ValueError(f"route must be 'small' or 'frontier', got {route!r}")
        outcome = {
            "task": task,
            "route": route,
            "confidence": _check_confidence(confidence),
            "fell_back": bool(fell_back),
        }
        if input is not None:
            outcome["input"] = input
        if small_output is not None:
            outcome["small_output"] = small_output
        if frontier_output is not None:
            outcome["frontier_output"] = frontier_output
        if latency_ms is not None:
            outcome["latency_ms"] = latency_ms
        if usage is not None:
            outcome["usage"] = usage
        if request_key is not None:
            outcome["request_key"] = request_key
        if self._closed:
            self._count_dropped(1)
            return
        queue = self._queue
        with self._queue_lock:
            if len(queue) >= self._max_queue_size:
                queue.popleft()
                self._stats["reports_dropped"] += 1
                dropped = True
            else:
                dropped = False
            queue.append(outcome)
            full_batch = len(queue) >= self.report_batch_size
        if dropped:
            total = self._stats["reports_dropped"]
            if total in (1, 100, 1000) or not total % 10000:  # a steady overflow must not flood the log
                logger.warning(
                    "routing outcome queue full (%d): dropped %d reports so far", self._max_queue_size, total
                )
        if full_batch and not self._wake_sender.is_set():
            self._wake_sender.set()

    def _count_dropped(self, count: int) -> None:
        # report() counts overflow under the queue lock; every other writer of this counter takes it too.
        with self._queue_lock:
            self._stats["reports_dropped"] += count

    def flush(self, timeout: float = 5.0) -> bool:
        """Send every queued report now (blocking up to ``timeout`` seconds); True if the queue was emptied."""
        deadline = time.monotonic() + timeout
        if not self._send_lock.acquire(timeout=max(0.0, timeout)):
            return False
        try:
            self._send_pending(deadline)
        finally:
            self._send_lock.release()
        return not self._queue

    def _sender_loop(self) -> None:
        while not self._stop.is_set():
            self._wake_sender.wait(self.report_interval)
            self._wake_sender.clear()
            if self._stop.is_set():
                return  # close() flushes in its own thread, with its deadline
            try:
                with self._send_lock:
                    self._send_pending(None)
            except Exception:  # the sender thread must survive anything
                logger.exception("unexpected error sending routing outcome reports")

    def _send_pending(self, deadline) -> None:
        while self._queue:
            if deadline is None:
                if self._stop.is_set():
                    return  # closing: close() sends what is left, within its own deadline
            elif time.monotonic() >= deadline:
                return
            with self._queue_lock:
                count = min(len(self._queue), self.report_batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
            if batch:
                self._send_batch(batch, deadline)

    def _send_batch(self, batch: list, deadline) -> bool:
        try:
            body = json.dumps({"outcomes": batch}, default=str, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:  # e.g. a circular structure in an input
            self._count_dropped(len(batch))
            logger.error("dropping %d routing outcome reports that are not JSON-serialisable: %s", len(batch), exc)
            return False
        headers = dict(self._headers)
        headers["Content-Type"] = "application/json"
        for attempt in range(1, self.max_send_attempts + 1):
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    break
            request = urllib.request.Request(self.outcomes_url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked in __init__
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                    response.read()
                self._stats["reports_sent"] += len(batch)
                return True
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                exc.close()
                self._stats["send_errors"] += 1
                # 408/429/5xx are transient; any other 4xx will not improve with a retry.
                if exc.code not in (408, 429) and exc.code < 500:
                    self._count_dropped(len(batch))
                    logger.error(
                        "routing outcomes rejected with HTTP %d, dropping %d reports%s", exc.code, len(batch), detail
                    )
                    return False
                error = f"HTTP {exc.code}{detail}"
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                self._stats["send_errors"] += 1
                error = str(exc)
            if attempt < self.max_send_attempts:
                delay = self.retry_backoff * 2 ** (attempt - 1)
                if deadline is not None:  # flush()/close(): back off, but never past the deadline
                    time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                elif self._stop.wait(delay):
                    break  # closing: close() sends what is left, within its own deadline
        else:
            self._count_dropped(len(batch))
            logger.warning(
                "dropping %d routing outcome reports after %d attempts: %s", len(batch), self.max_send_attempts, error
            )
            return False
        # Interrupted (deadline reached or closing): put the batch back in front for the final flush.
        with self._queue_lock:
            self._queue.extendleft(reversed(batch))
        return False


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """A short excerpt of an error response body, for the log line."""
    try:
        text = exc.read(300).decode("utf-8", "replace").strip()
    except Exception:  # only for logging
        return ""
    return f": {text}" if text else ""
