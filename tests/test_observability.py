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
