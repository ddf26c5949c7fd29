"""Prometheus metrics. Web processes and Celery workers write to a shared multiprocess directory
(PROMETHEUS_MULTIPROC_DIR, under DATA_DIR by default) so one /metrics scrape sees them all.
"""

import glob
import hmac
import logging
import os
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
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
        body = b""
    else:  # single process: this process's default registry holds everything
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    registry.register(QueueDepthCollector())
    return HttpResponse(body + generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
