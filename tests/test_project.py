"""Project-level promises: settings safety, the deployment file, the API docs, the health endpoint."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controlplane.celery_app import Queue

ROOT = Path(__file__).resolve().parent.parent


def _import_production(env: dict) -> subprocess.CompletedProcess:
    code = "import controlplane.settings.production"
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.com", "DEBUG": "True"}, "DEBUG=True is refused"),
        ({"ALLOWED_HOSTS": "example.com"}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "x" * 50}, "ALLOWED_HOSTS is not set"),
    ],
)
def test_production_settings_refuse_unsafe_values(env, message):
    result = _import_production(env)
    assert result.returncode != 0 and message in result.stderr


def test_production_settings_start_with_safe_values():
    result = _import_production({"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.com"})
    assert result.returncode == 0, result.stderr


def test_docker_compose_services_point_at_real_modules():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "gpu-worker", "beat"} <= set(services)
    assert (ROOT / "Dockerfile").exists()
    for name in ("postgres", "redis", "web", "worker", "gpu-worker"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        command = service.get("command")
        if not command:
            continue
        environment = service.get("environment", {})
        settings_module = environment.get("DJANGO_SETTINGS_MODULE")
        if settings_module:
            assert importlib.util.find_spec(settings_module) is not None, settings_module
        if command[0] == "gunicorn":
            module, _, attribute = command[1].partition(":")
            assert importlib.util.find_spec(module) is not None and attribute == "application"
        elif command[0] == "celery":
            assert command[1:3] == ["-A", "controlplane"]
            if "-Q" in command:
                queues = command[command.index("-Q") + 1].split(",")
                assert set(queues) <= {q.value for q in Queue}, (name, queues)
        elif command[:2] == ["python", "manage.py"]:
            from django.core.management import get_commands

            assert command[2] in get_commands(), command
    gpu = services["gpu-worker"]
    assert gpu["command"][gpu["command"].index("-Q") + 1] == "training"
    assert gpu["command"][gpu["command"].index("--concurrency") + 1] == "1"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    worker_queues = set(services["worker"]["command"][services["worker"]["command"].index("-Q") + 1].split(","))
    assert worker_queues == {"default", "ingest"}


def test_every_queue_is_consumed_by_some_compose_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    consumed = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        if command[:1] == ["celery"] and "-Q" in command:
            consumed |= set(command[command.index("-Q") + 1].split(","))
    assert consumed == {q.value for q in Queue}


@pytest.mark.django_db
def test_openapi_schema_and_local_docs(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/api-keys/" in text and "/api/v1/tenant" in text
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    assert "cdn" not in docs.lower() and "https://" not in docs.split("<body>")[0].replace("https://www.w3.org", "")


@pytest.mark.django_db
def test_unknown_api_path_answers_the_json_envelope(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_pagination_caps_the_page_size(admin_client, tenant):
    from tests.factories import make_api_key

    for _ in range(3):
        make_api_key(tenant)
    body = admin_client.get("/api/v1/api-keys/?page_size=100000").json()
    assert body["count"] == 4 and len(body["results"]) == 4
    from controlplane.api.pagination import Pagination

    assert Pagination.max_page_size == 500
    body = admin_client.get("/api/v1/api-keys/?page_size=2").json()
    assert len(body["results"]) == 2 and body["next"]


@pytest.mark.django_db
def test_health_checks_database_cache_and_broker(client):
    response = client.get("/healthz")
    body = response.json()
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert body["checks"]["database"]["ok"] and body["checks"]["cache"]["ok"]
    assert response.status_code == (200 if body["ok"] else 503)


def test_production_settings_secure_cookies_and_hsts():
    code = (
        "import json, controlplane.settings.production as s; print(json.dumps([s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_HTTPONLY]))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG",)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.com"},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    secure_session, secure_csrf, hsts, redirect, httponly = json.loads(result.stdout)
    assert secure_session and secure_csrf and httponly and redirect and hsts >= 31536000


def test_every_template_form_posts_with_a_csrf_token():
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        lowered = text.lower()
        start = 0
        while (index := lowered.find("<form", start)) != -1:
            end = lowered.find("</form>", index)
            form = lowered[index : end if end != -1 else len(lowered)]
            if 'method="post"' in form and "csrf_token" not in form:
                offenders.append(f"{template.relative_to(ROOT)} at character {index}")
            start = index + 5
    assert not offenders, f"POST forms without {{% csrf_token %}}: {offenders}"


def test_product_settings_can_be_set_from_the_environment():
    code = "from django.conf import settings; import django; django.setup(); print(settings.INGEST_BATCH_SIZE, settings.ROUTING_KEY_MEMO_SECONDS)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
            "INGEST_BATCH_SIZE": "500",
            "ROUTING_KEY_MEMO_SECONDS": "0.5",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["500", "0.5"]


@pytest.mark.django_db
def test_a_lone_surrogate_echoed_in_an_error_is_a_400_not_a_500(admin_client):
    response = admin_client.post(
        "/api/v1/tasks/", data=b'{"slug": "x", "name": "x", "kind": "\\ud800"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
