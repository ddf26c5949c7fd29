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


def _series(prefix: str):
    """A registry with a counter and a histogram shaped like the routing series, under names of their own: in
    multiprocess mode series of one name share their values within a process, and the values files of an earlier
    run whose process had the same id would be read back."""
    import uuid

    from prometheus_client import CollectorRegistry, Counter, Histogram

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    registry = CollectorRegistry()
    counter = Counter(f"{name}_requests_total", "test", ["endpoint", "status"], registry=registry)
    histogram = Histogram(f"{name}_seconds", "test", ["endpoint"], buckets=metrics.LATENCY_BUCKETS, registry=registry)
    return name, registry, counter, histogram


def _samples(registry, name: str) -> dict:
    return {
        (sample.name.removeprefix(name), tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_batched_request_metrics_expose_what_observe_would():
    """The hot endpoint's batched series equal plain inc()/observe() calls once flushed, at every bucket
    boundary (guards the prometheus_client internals BatchedRequestMetrics fills)."""
    name, registry, counter, histogram = _series("batched")
    plain_name, reference, plain_counter, plain_histogram = _series("plain")

    batched = metrics.BatchedRequestMetrics(counter, histogram, interval=3600, endpoint="table")
    observations = [(200, 0.0001), (200, 0.0005), (304, 0.00051), (200, 0.001), (401, 0.7), (200, 1.0), (500, 7.5)]
    for status_code, seconds in observations:
        batched.record(status_code, seconds)
        plain_counter.labels(endpoint="table", status=str(status_code)).inc()
        plain_histogram.labels(endpoint="table").observe(seconds)

    # Not due for an hour: the process's flusher thread leaves it alone.
    assert registry.get_sample_value(f"{name}_requests_total", {"endpoint": "table", "status": "200"}) is None
    assert registry.get_sample_value(f"{name}_seconds_count", {"endpoint": "table"}) == 0
    batched.flush()
    assert _samples(registry, name) == _samples(reference, plain_name)
    batched.flush()  # nothing new: nothing changes
    assert _samples(registry, name) == _samples(reference, plain_name)


def test_batched_request_metrics_flush_on_their_own_interval_and_on_scrape(client):
    import time

    name, registry, counter, histogram = _series("flush")
    requests = f"{name}_requests_total"
    at_once = metrics.BatchedRequestMetrics(counter, histogram, interval=0, endpoint="x")
    at_once.record(200, 0.002)  # an interval of 0 hands every request over at once
    assert registry.get_sample_value(requests, {"endpoint": "x", "status": "200"}) == 1

    # Without any request or scrape, the process's flusher thread hands a batch over when its interval is due,
    # also when the thread was started by (and is sleeping for) an instance with a long interval.
    hourly = metrics.BatchedRequestMetrics(counter, histogram, interval=3600, endpoint="y")
    hourly.record(200, 0.002)
    quick = metrics.BatchedRequestMetrics(counter, histogram, interval=0.05, endpoint="z")
    quick.record(304, 0.001)
    deadline = time.monotonic() + 10
    while registry.get_sample_value(requests, {"endpoint": "z", "status": "304"}) is None:
        assert time.monotonic() < deadline, "the flusher thread never handed the batch over"
        time.sleep(0.02)
    assert registry.get_sample_value(requests, {"endpoint": "y", "status": "200"}) is None  # due in an hour

    client.get("/metrics")  # a scrape hands every batch of the serving process over first
    assert registry.get_sample_value(requests, {"endpoint": "y", "status": "200"}) == 1
    assert registry.get_sample_value(f"{name}_seconds_count", {"endpoint": "y"}) == 1


def test_a_forked_child_starts_from_zero_with_a_flusher_of_its_own():
    """A gunicorn worker forked from a process that had counted: the parent reports those counts, the child
    neither repeats them nor lacks a thread to hand its own over."""
    import os

    _name, _registry, counter, histogram = _series("fork")
    hourly = metrics.BatchedRequestMetrics(counter, histogram, interval=3600, endpoint="y")
    hourly.record(500, 0.002)
    assert hourly._statuses == {500: 1}  # pending in the parent: not due for an hour
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            inherited = dict(hourly._statuses)
            hourly.record(200, 0.001)
            flusher = metrics.BatchedRequestMetrics._flusher
            ok = inherited == {} and hourly._statuses == {200: 1} and flusher is not None and flusher.is_alive()
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.waitpid(pid, 0)
        os.close(read)
    assert hourly._statuses == {500: 1}
