"""Development settings: the quick start runs on these (DEBUG on, a throwaway secret, loopback hosts)."""

from controlplane.settings.base import *  # noqa: F403
from controlplane.settings.base import DATA_DIR, env

DEBUG = env.bool("DEBUG", default=True)


def _development_secret() -> str:
    """A random secret made once per DATA_DIR, so dev sessions survive restarts without a committed key."""
    import secrets

    path = DATA_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
