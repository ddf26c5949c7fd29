"""Top navigation entries. Apps register theirs in AppConfig.ready(), keeping `tenants` free of imports
from the apps that depend on it."""

from django.urls import reverse

_ITEMS: list[tuple[int, str, str]] = []


def register_nav(order: int, title: str, url_name: str) -> None:
    if (order, title, url_name) not in _ITEMS:
        _ITEMS.append((order, title, url_name))
        _ITEMS.sort()


def nav_items() -> list[dict]:
    return [{"title": title, "url": reverse(url_name)} for _, title, url_name in _ITEMS]
