"""Test settings: the same code paths, with a fast password hasher and an in-process cache.

Celery stays asynchronous here too: unit tests call task functions directly, and the integration
tests start a real worker process against the real broker (Redis in CI, files locally).
"""

import os
from pathlib import Path

from controlplane.settings.base import *  # noqa: F403
from controlplane.settings.base import DATA_DIR, env

DEBUG = False
SECRET_KEY = "test-only-secret-key-not-for-production-use-0123456789"  # noqa: S105 - tests only
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# One cache folder per xdist worker: tests clear the cache, and must not clear another process's.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{DATA_DIR / ('test-cache-' + _WORKER)}")}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Per test process, unless a test hands its own folders to a worker process through the environment.
ARTIFACT_ROOT = Path(env.str("ARTIFACT_ROOT", default=str(DATA_DIR / f"test-artifacts-{_WORKER}")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / f"test-media-{_WORKER}")))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One SQLite test database per test process: two test runs at once must not share (and break) a file.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-controlplane-{os.getpid()}.sqlite3")}  # noqa: F405
