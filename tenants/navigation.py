"""Top navigation entries. Apps register theirs in AppConfig.ready(), keeping `tenants` free of imports
from the apps that depend on it."""

from django.urls import NoReverseMatch, reverse

_ITEMS: list[tuple[int, str, str]] = []


def register_nav(order: int, title: str, url_name: str) -> None:
    if (order, title, url_name) not in _ITEMS:
        _ITEMS.append((order, title, url_name))
        _ITEMS.sort()


def nav_items() -> list[dict]:
    items = []
    for _, title, url_name in _ITEMS:
        try:
            items.append({"title": title, "url": reverse(url_name)})
        except NoReverseMatch:
            continue  # a page registered before its view exists
    return items
