"""RoutingClient against an in-test HTTP server that implements the control plane's routing contract.

Plain pytest: no Django, no database. The live-server test against the real views lives elsewhere.
"""

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from routing.client import RoutingClient, RoutingError

API_KEY = "sk_test_good"
TASK = "ticket_classification"


def make_table(version=3, threshold=0.83):
    return {
        "version": version,
        "tenant": "acme",
        "published_at": "2025-01-01T00:00:00Z",
        "default": {"route": "frontier"},
        "rules": {
            TASK: {
                "model_version": f"tickets-v{version}",
                "model_version_id": 12,
                "base_model": "minilm-l6",
                "artifact": "/api/v1/model-versions/12/artifact",
                "threshold": threshold,
                "fallback": "gpt-4o",
                "canary": 100,
                "shadow": False,
            }
        },
    }


class FakeControlPlane:
    """GET /api/v1/routing/table (ETag, 304) and POST /api/v1/routing/outcomes, as in the contract."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # (method, path, headers dict)
        self.outcome_batches = []  # list of lists of outcomes
        self.outcome_statuses = []  # statuses to answer to the next outcome POSTs, then 202
        self.table_body_override = None
        self.set_table(make_table())
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def _authorised(self):
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    self._answer(401, b'{"error": "invalid API key"}')
                    return False
                return True

            def do_GET(self):
                with plane.lock:
                    plane.requests.append(("GET", self.path, dict(self.headers)))
                    body, etag = plane.body, plane.etag
                if self.path != "/api/v1/routing/table":
                    return self._answer(404, b"{}")
                if not self._authorised():
                    return
                cache = [("ETag", etag), ("Cache-Control", "private, max-age=30")]
                if self.headers.get("If-None-Match") == etag:
                    return self._answer(304, headers=cache)
                self._answer(200, plane.table_body_override or body, cache)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = self.rfile.read(length)
                with plane.lock:
                    plane.requests.append(("POST", self.path, dict(self.headers)))
                    status = plane.outcome_statuses.pop(0) if plane.outcome_statuses else 202
                if self.path != "/api/v1/routing/outcomes":
                    return self._answer(404, b"{}")
                if not self._authorised():
                    return
                if status != 202:
                    return self._answer(status, b'{"error": "try again"}')
                outcomes = json.loads(payload)["outcomes"]
                assert len(outcomes) <= 1000
                with plane.lock:
                    plane.outcome_batches.append(outcomes)
                self._answer(202, json.dumps({"accepted": len(outcomes)}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def set_table(self, table):
        body = json.dumps(table).encode()
        with self.lock:
            self.body = body
            self.etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def outcomes(self):
        with self.lock:
            return [outcome for batch in self.outcome_batches for outcome in batch]

    def count(self, method):
        with self.lock:
            return sum(1 for request in self.requests if request[0] == method)


@pytest.fixture
def plane():
    server = FakeControlPlane()
    yield server
    server.stop()


@pytest.fixture
def clients():
    made = []
    yield made
    for client in made:
        client.close(timeout=1)


@pytest.fixture
def dead_url():
    """A URL on which nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def wait_until(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_first_fetch_loads_the_table_and_decides_locally(plane, clients):
    client = RoutingClient(plane.url, API_KEY, refresh_seconds=60)
    clients.append(client)
    assert client.table_version == 3
    assert client.etag == plane.etag
    assert client.decide(TASK, 0.9, "r1").route == "small"
    assert client.decide(TASK, 0.9, "r1").model == "tickets-v3"
    decision = client.decide(TASK, 0.5, "r1")
    assert (decision.route, decision.model, decision.reason) == ("frontier", "gpt-4o", "below_threshold")
    assert client.decide("translation", 0.99).reason == "not_in_scope"
    assert client.stats["fetches"] == 1 and client.stats["errors"] == 0
    method, path, headers = plane.requests[0]
    assert (method, path, headers["Authorization"]) == ("GET", "/api/v1/routing/table", f"Bearer {API_KEY}")
    assert "If-None-Match" not in headers
    with pytest.raises(ValueError):
        client.decide(TASK, 1.5)


def test_refresh_sends_if_none_match_and_304_keeps_the_table(plane, clients):
    client = RoutingClient(plane.url, API_KEY, start=False)
    clients.append(client)
    assert client.refresh() is True
    table = client.compiled_table
    assert client.refresh() is False
    assert client.refresh() is False
    assert client.compiled_table is table
    assert plane.requests[-1][2]["If-None-Match"] == plane.etag
    stats = client.stats
    assert (stats["fetches"], stats["not_modified"], stats["errors"]) == (3, 2, 0)

    plane.set_table(make_table(version=4, threshold=0.95))
    assert client.refresh() is True
    assert client.table_version == 4
    assert client.decide(TASK, 0.9).reason == "below_threshold"


def test_background_thread_refreshes_and_picks_up_a_new_version(plane, clients):
    client = RoutingClient(plane.url, API_KEY, refresh_seconds=0.05)
    clients.append(client)
    assert wait_until(lambda: client.stats["not_modified"] >= 2)
    plane.set_table(make_table(version=5))
    assert wait_until(lambda: client.table_version == 5)
    assert client.decide(TASK, 0.9).model == "tickets-v5"


def test_server_down_keeps_serving_the_last_good_table(plane, clients):
    client = RoutingClient(plane.url, API_KEY, refresh_seconds=0.05, timeout=0.5)
    clients.append(client)
    assert client.table_version == 3
    plane.stop()
    assert client.refresh() is False
    assert wait_until(lambda: client.stats["errors"] >= 2)  # background refreshes keep failing quietly
    assert client.table_version == 3
    assert client.decide(TASK, 0.9).reason == "above_threshold"
    assert client.last_error
    with pytest.raises(RoutingError):
        client.refresh(raise_on_error=True)


def test_unusable_table_keeps_the_last_good_one(plane, clients):
    client = RoutingClient(plane.url, API_KEY, start=False)
    clients.append(client)
    client.refresh()
    plane.table_body_override = b'{"version": 4, "rules": {"x": {"threshold": "high"}}}'
    plane.set_table(make_table(version=4))  # new ETag, so the server answers 200 with the bad body
    assert client.refresh() is False
    assert client.table_version == 3 and client.stats["errors"] == 1
    plane.table_body_override = b"not json"
    assert client.refresh() is False
    assert client.table_version == 3 and client.stats["errors"] == 2


def test_never_loaded_routes_everything_to_the_frontier(dead_url, clients):
    client = RoutingClient(dead_url, API_KEY, refresh_seconds=60, timeout=0.5)
    clients.append(client)
    decision = client.decide(TASK, 0.99, "r1")
    assert (decision.route, decision.model, decision.reason, decision.shadow) == ("frontier", None, "no_table", False)
    assert client.table_version is None and client.table is None
    assert client.stats["errors"] == 1
    with pytest.raises(ValueError):
        client.decide(TASK, -0.1)


def test_rejected_key_is_an_error_and_routes_to_the_frontier(plane, clients):
    client = RoutingClient(plane.url, "sk_wrong", start=False)
    clients.append(client)
    assert client.refresh() is False
    assert "401" in client.last_error
    assert client.decide(TASK, 0.99).reason == "no_table"
    with pytest.raises(RoutingError, match="rejected"):
        client.refresh(raise_on_error=True)


def test_reports_are_batched_and_delivered(plane, clients):
    client = RoutingClient(plane.url, API_KEY, refresh_seconds=60, report_batch_size=10, report_interval=0.05)
    clients.append(client)
    for i in range(25):
        client.report(
            TASK,
            "frontier",
            0.4,
            True,
            input={"text": f"ticket {i}"},
            frontier_output="billing",
            small_output="refund",
            latency_ms=12.5,
            usage={"prompt_tokens": 10},
            request_key=f"r{i}",
        )
    assert wait_until(lambda: len(plane.outcomes) == 25)
    assert all(len(batch) <= 10 for batch in plane.outcome_batches)
    assert len(plane.outcome_batches) >= 3
    first = plane.outcomes[0]
    assert first == {
        "task": TASK,
        "route": "frontier",
        "confidence": 0.4,
        "fell_back": True,
        "input": {"text": "ticket 0"},
        "small_output": "refund",
        "frontier_output": "billing",
        "latency_ms": 12.5,
        "usage": {"prompt_tokens": 10},
        "request_key": "r0",
    }
    client.report(TASK, "small", 0.95, False)
    assert wait_until(lambda: len(plane.outcomes) == 26)
    assert plane.outcomes[-1] == {"task": TASK, "route": "small", "confidence": 0.95, "fell_back": False}
    # The server records a batch just before it answers; the client counts it once the answer arrives.
    assert wait_until(lambda: client.stats["reports_sent"] == 26)
    assert client.stats["reports_dropped"] == 0


def test_report_validates_its_arguments(plane, clients):
    client = RoutingClient(plane.url, API_KEY, start=False)
    clients.append(client)
    for args in [(TASK, "gpu", 0.5, True), ("", "small", 0.5, False), (TASK, "small", 2.0, False)]:
        with pytest.raises(ValueError):
            client.report(*args)


def test_report_never_blocks_when_the_server_is_down(dead_url, clients):
    client = RoutingClient(
        dead_url,
        API_KEY,
        timeout=0.5,
        report_batch_size=50,
        report_interval=0.01,
        max_queue_size=100,
        retry_backoff=0.01,
    )
    clients.append(client)
    started = time.perf_counter()
    for i in range(20000):
        client.report(TASK, "frontier", 0.5, True, request_key=str(i))
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed
    stats = client.stats
    assert stats["reports_queued"] <= 100
    assert stats["reports_dropped"] >= 20000 - 100 - 50 * 2  # overflow (plus at most a couple of batches in flight)
    assert wait_until(lambda: client.stats["send_errors"] >= 1)


def test_failed_sends_are_retried_with_backoff(plane, clients):
    plane.outcome_statuses = [503, 503]
    client = RoutingClient(plane.url, API_KEY, report_interval=0.02, retry_backoff=0.01)
    clients.append(client)
    client.report(TASK, "small", 0.9, False)
    assert wait_until(lambda: client.stats["reports_sent"] == 1)
    assert len(plane.outcomes) == 1
    stats = client.stats
    assert (stats["send_errors"], stats["reports_sent"], stats["reports_dropped"]) == (2, 1, 0)


def test_sends_are_given_up_after_bounded_attempts_or_a_client_error(plane, clients):
    plane.outcome_statuses = [503] * 3
    client = RoutingClient(plane.url, API_KEY, report_interval=0.02, retry_backoff=0.01, max_send_attempts=3)
    clients.append(client)
    client.report(TASK, "small", 0.9, False)
    assert wait_until(lambda: client.stats["reports_dropped"] == 1)
    assert client.stats["send_errors"] == 3 and plane.count("POST") == 3

    plane.outcome_statuses = [400]  # a rejected batch is not retried
    client.report(TASK, "small", 0.9, False)
    assert wait_until(lambda: client.stats["reports_dropped"] == 2)
    time.sleep(0.1)
    assert plane.count("POST") == 4 and plane.outcomes == []


def test_close_flushes_outstanding_reports(plane):
    client = RoutingClient(plane.url, API_KEY, report_interval=60, report_batch_size=200)
    for i in range(7):
        client.report(TASK, "small", 0.9, False, request_key=str(i))
    assert plane.outcomes == []  # the background sender is waiting out its interval
    started = time.monotonic()
    assert client.close(timeout=3) is True
    assert time.monotonic() - started < 2
    assert [outcome["request_key"] for outcome in plane.outcomes] == [str(i) for i in range(7)]
    assert client.stats["reports_sent"] == 7
    client.report(TASK, "small", 0.9, False)  # after close: counted as dropped, never raises
    assert client.stats["reports_dropped"] == 1


def test_close_gives_up_at_its_timeout_when_the_server_is_down(dead_url):
    client = RoutingClient(dead_url, API_KEY, report_interval=60, timeout=0.5, retry_backoff=0.2)
    client.report(TASK, "small", 0.9, False)
    started = time.monotonic()
    assert client.close(timeout=0.5) is False
    assert time.monotonic() - started < 1.5
    assert client.stats["reports_dropped"] == 1


def test_context_manager_flushes_on_exit(plane):
    with RoutingClient(plane.url, API_KEY, report_interval=60) as client:
        assert client.decide(TASK, 0.9).route == "small"
        client.report(TASK, "small", 0.9, False)
    assert len(plane.outcomes) == 1


def test_load_table_serves_a_cached_copy_until_the_next_refresh(plane, clients):
    client = RoutingClient(plane.url, API_KEY, start=False)
    clients.append(client)
    client.load_table(make_table(version=2))
    assert client.table_version == 2 and client.decide(TASK, 0.9).model == "tickets-v2"
    with pytest.raises(ValueError):
        client.load_table({"rules": {TASK: {"threshold": 7}}})
    assert client.table_version == 2
    assert client.refresh() is True and client.table_version == 3


def test_only_http_urls_are_accepted():
    with pytest.raises(ValueError):
        RoutingClient("file:///etc", API_KEY, start=False)
