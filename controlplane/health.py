"""Health endpoint: checks the database, the cache and the broker, each with a short timeout."""

import time

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    cache.set("healthz", "ok", 10)
    if cache.get("healthz") != "ok":
        raise RuntimeError("cache did not return what was written")


def _check_broker() -> None:
    from controlplane.celery_app import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


def healthz(request):
    results, healthy = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as error:
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
            healthy = False
        else:
            results[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return JsonResponse({"ok": healthy, "checks": results}, status=200 if healthy else 503)
