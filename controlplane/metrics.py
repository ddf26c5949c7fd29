"""Prometheus metrics. Web processes and Celery workers write to a shared multiprocess directory
(PROMETHEUS_MULTIPROC_DIR, under DATA_DIR by default) so one /metrics scrape sees them all.
"""

import atexit
import glob
import hmac
import logging
import os
import threading
import time
import weakref
from bisect import bisect_left
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)

ROUTING_REQUESTS = Counter("controlplane_routing_requests_total", "Routing API requests", ["endpoint", "status"])
ROUTING_LATENCY = Histogram(
    "controlplane_routing_request_seconds", "Routing API latency", ["endpoint"], buckets=LATENCY_BUCKETS
)
UPLOADS = Counter("controlplane_uploads_total", "Example uploads finished, by final status", ["status"])
UPLOAD_DURATION = Histogram(
    "controlplane_upload_duration_seconds", "Example upload processing time", ["status"], buckets=DURATION_BUCKETS
)
UPLOAD_ROWS = Counter("controlplane_upload_rows_total", "Rows read from uploads, by outcome", ["outcome"])
TRAINING_JOBS = Counter("controlplane_training_jobs_total", "Training jobs finished, by final state", ["state"])
TRAINING_JOB_DURATION = Histogram(
    "controlplane_training_job_duration_seconds", "Training job run time", ["state"], buckets=DURATION_BUCKETS
)


class BatchedRequestMetrics:
    """Requests and latencies of one hot endpoint, counted in plain Python and handed to prometheus_client in one
    go every `interval` seconds by a background thread of the process, when the process serves /metrics and when
    it exits (`interval=0`: at every request).

    In multiprocess mode each increment is a lock and a write into a memory-mapped file. On the routing table's
    warm path (a few microseconds of work of its own) the two series cost more than the rest of the handler, about
    15 microseconds per request in bench/routing.py; batched, they cost a list increment. A scrape sees counts
    at most `interval` seconds old.

    `record(status_code, seconds)` is safe from several threads. The histogram is filled through its buckets'
    values (prometheus_client has no public call that adds several observations at once);
    tests/test_observability.py checks the exposition against plain `observe()` calls, so a change of those
    internals fails a test rather than a scrape.

    A process forked from one that records starts from zero with a thread of its own. (prometheus_client's own
    multiprocess lock is not reset by the fork: fork before recording, as gunicorn does, not in the middle.)
    """

    _instances: "weakref.WeakSet[BatchedRequestMetrics]" = weakref.WeakSet()
    _flusher: threading.Thread | None = None
    _flusher_lock = threading.Lock()
    _wake = threading.Event()  # set when an instance appears, so that the thread re-plans its sleep
    IDLE_SECONDS = 1.0  # the thread's sleep when no instance is due sooner

    def __init__(self, counter: Counter, histogram: Histogram, *, interval: float = 1.0, **labels: str):
        self._counter = counter
        self._labels = labels
        self._latency = histogram.labels(**labels)
        self._bounds = list(self._latency._upper_bounds)
        self._interval = interval
        self._children: dict[int, object] = {}
        self._reset()
        with BatchedRequestMetrics._flusher_lock:
            BatchedRequestMetrics._instances.add(self)
        BatchedRequestMetrics._wake.set()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[int, int] = {}
        self._buckets = [0] * len(self._bounds)
        self._sum = 0.0
        self._due = time.monotonic() + self._interval  # when the flusher thread hands this batch over next

    def record(self, status_code: int, seconds: float) -> None:
        index = bisect_left(self._bounds, seconds)  # the first bucket whose bound is >= seconds, as observe() does
        with self._lock:
            self._statuses[status_code] = self._statuses.get(status_code, 0) + 1
            self._buckets[index] += 1
            self._sum += seconds
        if not self._interval:
            self.flush()
        elif BatchedRequestMetrics._flusher is None:
            BatchedRequestMetrics._start_flusher()

    def flush(self) -> None:
        with self._lock:
            self._due = time.monotonic() + self._interval
            if not self._statuses:
                return
            statuses, self._statuses = self._statuses, {}
            buckets, self._buckets = self._buckets, [0] * len(self._bounds)
            total, self._sum = self._sum, 0.0
        for status_code, count in statuses.items():
            child = self._children.get(status_code)
            if child is None:
                child = self._children[status_code] = self._counter.labels(**self._labels, status=str(status_code))
            child.inc(count)
        self._latency._sum.inc(total)
        for value, count in zip(self._latency._buckets, buckets, strict=True):
            if count:
                value.inc(count)

    @classmethod
    def _live_instances(cls) -> "list[BatchedRequestMetrics]":
        with cls._flusher_lock:
            return list(cls._instances)

    @classmethod
    def flush_all(cls) -> None:
        for instance in cls._live_instances():
            instance.flush()

    @classmethod
    def _start_flusher(cls) -> None:
        with cls._flusher_lock:
            if cls._flusher is None:
                cls._flusher = threading.Thread(target=cls._flush_forever, name="metrics-flush", daemon=True)
                cls._flusher.start()

    @classmethod
    def _flush_forever(cls) -> None:
        """Hand each instance's batch over when its own interval is due; sleep until the next one is."""
        try:
            while True:
                try:
                    now = time.monotonic()
                    next_due = now + cls.IDLE_SECONDS
                    for instance in cls._live_instances():
                        if not instance._interval:
                            continue
                        if instance._due <= now:
                            instance.flush()
                        next_due = min(next_due, instance._due)
                except Exception:  # a metrics write must never end the thread
                    logger.warning("metrics flush failed", exc_info=True)
                    next_due = time.monotonic() + cls.IDLE_SECONDS
                cls._wake.wait(max(0.01, next_due - time.monotonic()))
                cls._wake.clear()
        finally:  # should it end all the same, the next record() starts another
            cls._flusher = None

    @classmethod
    def _after_fork_in_child(cls) -> None:
        """A forked child has no flusher thread and may have inherited held locks; the parent reports what it
        counted, so the child starts from zero."""
        cls._flusher = None
        cls._flusher_lock = threading.Lock()
        cls._wake = threading.Event()
        for instance in list(cls._instances):
            instance._reset()


os.register_at_fork(after_in_child=BatchedRequestMetrics._after_fork_in_child)
atexit.register(BatchedRequestMetrics.flush_all)


def queue_depths() -> dict[str, int]:
    """Messages waiting per Celery queue, read from the broker."""
    from controlplane.celery_app import Queue, app

    depths = {}
    broker_url = settings.CELERY_BROKER_URL
    if broker_url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        for queue in Queue:
            depths[queue.value] = len(glob.glob(str(folder / f"*.{queue.value}.msg")))
        return depths
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for queue in Queue:
            try:
                depths[queue.value] = channel.queue_declare(queue=queue.value, passive=True).message_count
            except Exception:  # a queue nobody declared yet holds nothing
                depths[queue.value] = 0
    return depths


class QueueDepthCollector:
    def collect(self):
        family = GaugeMetricFamily("controlplane_queue_depth", "Messages waiting per Celery queue", labels=["queue"])
        try:
            for queue, depth in queue_depths().items():
                family.add_metric([queue], depth)
        except Exception:  # the broker being down must not break the scrape
            logger.warning("queue depth unavailable", exc_info=True)
        yield family


def metrics_view(request):
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        supplied = request.META.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
        if not hmac.compare_digest(supplied, token):
            return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    BatchedRequestMetrics.flush_all()  # this process's batched counts, so that a scrape sees them
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
        body = b""
    else:  # single process: this process's default registry holds everything
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    registry.register(QueueDepthCollector())
    return HttpResponse(body + generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
