import pytest

from controlplane import metrics

pytestmark = pytest.mark.django_db


def test_metrics_endpoint_exposes_the_listed_series(client):
    metrics.ROUTING_REQUESTS.labels(endpoint="table", status="200").inc()
    metrics.ROUTING_LATENCY.labels(endpoint="table").observe(0.002)
    metrics.UPLOADS.labels(status="succeeded").inc()
    metrics.UPLOAD_DURATION.labels(status="succeeded").observe(3)
    metrics.TRAINING_JOBS.labels(state="succeeded").inc()
    metrics.TRAINING_JOB_DURATION.labels(state="succeeded").observe(90)
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    for series in (
        "controlplane_routing_requests_total",
        "controlplane_routing_request_seconds_bucket",
        "controlplane_uploads_total",
        "controlplane_upload_duration_seconds_bucket",
        "controlplane_training_jobs_total",
        "controlplane_training_job_duration_seconds_bucket",
        'controlplane_queue_depth{queue="training"}',
        'controlplane_queue_depth{queue="ingest"}',
    ):
        assert series in text, series


def test_metrics_token_is_enforced_when_set(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


def test_log_records_carry_tenant_job_and_upload_ids():
    import io
    import json
    import logging

    from pythonjsonlogger.json import JsonFormatter

    from controlplane.logging_context import ContextFilter, log_context

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter("%(levelname)s %(tenant_id)s %(job_id)s %(upload_id)s %(message)s"))
    logger = logging.getLogger("tests.structured")
    logger.addHandler(handler)
    try:
        with log_context(tenant_id=7, job_id=42):
            logger.warning("training step")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (inside["tenant_id"], inside["job_id"], inside["upload_id"]) == (7, 42, None)
    assert outside["tenant_id"] is None


def test_api_requests_log_their_tenant(admin_client, tenant, caplog):
    import logging

    from controlplane.logging_context import ContextFilter

    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.WARNING):
        admin_client.get("/api/v1/api-keys/999999")
    record = next(r for r in caplog.records if "Not Found" in r.getMessage())
    assert record.tenant_id == tenant.pk


def test_batched_request_metrics_expose_what_observe_would():
    """The hot endpoint's batched series equal plain inc()/observe() calls once flushed, at every bucket
    boundary (guards the prometheus_client internals BatchedRequestMetrics fills)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    counter = Counter("t_requests_total", "t", ["endpoint", "status"], registry=registry)
    histogram = Histogram("t_seconds", "t", ["endpoint"], buckets=metrics.LATENCY_BUCKETS, registry=registry)
    # Other names: in multiprocess mode, series of the same name share their values within a process.
    reference = CollectorRegistry()
    plain_counter = Counter("r_requests_total", "t", ["endpoint", "status"], registry=reference)
    plain_histogram = Histogram("r_seconds", "t", ["endpoint"], buckets=metrics.LATENCY_BUCKETS, registry=reference)

    batched = metrics.BatchedRequestMetrics(counter, histogram, interval=3600, endpoint="table")
    observations = [(200, 0.0001), (200, 0.0005), (304, 0.00051), (200, 0.001), (401, 0.7), (200, 1.0), (500, 7.5)]
    for status_code, seconds in observations:
        batched.record(status_code, seconds)
        plain_counter.labels(endpoint="table", status=str(status_code)).inc()
        plain_histogram.labels(endpoint="table").observe(seconds)

    def samples(registry):
        return {
            (sample.name[2:], tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect()
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    assert registry.get_sample_value("t_requests_total", {"endpoint": "table", "status": "200"}) is None  # not yet
    assert registry.get_sample_value("t_seconds_count", {"endpoint": "table"}) == 0
    batched.flush()
    assert samples(registry) == samples(reference)
    batched.flush()  # nothing new: nothing changes
    assert samples(registry) == samples(reference)


def test_batched_request_metrics_flush_on_their_own_on_scrape_and_in_forked_children(client):
    import os
    import time

    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    counter = Counter("u_requests_total", "u", ["endpoint", "status"], registry=registry)
    histogram = Histogram("u_seconds", "u", ["endpoint"], buckets=metrics.LATENCY_BUCKETS, registry=registry)
    at_once = metrics.BatchedRequestMetrics(counter, histogram, interval=0, endpoint="x")
    at_once.record(200, 0.002)  # an interval of 0 hands every request over at once
    assert registry.get_sample_value("u_requests_total", {"endpoint": "x", "status": "200"}) == 1

    hourly = metrics.BatchedRequestMetrics(counter, histogram, interval=3600, endpoint="y")
    hourly.record(200, 0.002)
    assert registry.get_sample_value("u_requests_total", {"endpoint": "y", "status": "200"}) is None
    client.get("/metrics")  # a scrape hands every batch of the serving process over first
    assert registry.get_sample_value("u_requests_total", {"endpoint": "y", "status": "200"}) == 1
    assert registry.get_sample_value("u_seconds_count", {"endpoint": "y"}) == 1

    # With no further request and no scrape, the process's flusher thread hands counts over on its own.
    quick = metrics.BatchedRequestMetrics(counter, histogram, interval=0.05, endpoint="z")
    quick.record(304, 0.001)
    deadline = time.monotonic() + 10
    while registry.get_sample_value("u_requests_total", {"endpoint": "z", "status": "304"}) is None:
        assert time.monotonic() < deadline, "the flusher thread never handed the batch over"
        time.sleep(0.02)

    # A forked child (a gunicorn worker forked from a preloaded master) starts from zero with its own thread.
    hourly.record(500, 0.002)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        ok = not hourly._statuses and metrics.BatchedRequestMetrics._flusher is None
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(read)
