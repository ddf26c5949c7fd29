"""The hot-path cache of published routing tables.

Two levels, so that a warm request makes no database query and, per process, deserialises nothing:

- the shared Django cache (Redis in production, files on one machine) holds, per tenant, the number of the
  current published version (``routing:current:<tenant id>``) and, per version, the compiled bytes and ETag
  (``routing:table:<tenant id>:<version>``; immutable, so they never need invalidating);
- each process keeps a local copy of each tenant's table object, used only while its version equals the
  shared current number. One small shared read per request therefore tells every web process at once that
  a new version was published or rolled back.

Publishing sets the current number after the transaction commits (`table_published`); a process that finds
no number loads the latest version from the database and *adds* the number (never overwrites), so a reader
that read the database just before a publish committed cannot put the old number back over the new one.
"""

from __future__ import annotations

from django.core.cache import cache

from routing.compiler import CompiledBody
from routing.decision import CompiledTable

CURRENT_KEY = "routing:current:%d"
TABLE_KEY = "routing:table:%d:%d"
# The current number expires now and then so that a lost invalidation (a cache write that failed) heals
# itself; the compiled bytes of a version never change, so they may live long.
CURRENT_TIMEOUT = 600
TABLE_TIMEOUT = 7 * 24 * 3600
# Bound on the per-process copies (one per tenant that called this process): clearing now and then is
# cheaper than an LRU on the hot path and only costs one shared read per tenant afterwards.
LOCAL_MAX_TENANTS = 10_000


class PublishedTable:
    """One tenant's published table as served: bytes, strong ETag, Cache-Control; the decision table lazily."""

    __slots__ = ("_decider", "body", "cache_control", "etag", "max_age", "version")

    def __init__(self, version: int, etag: str, body: bytes, max_age: int):
        self.version = version
        self.etag = etag
        self.body = body
        self.max_age = max_age
        self.cache_control = f"private, max-age={max_age}"
        self._decider = None

    @classmethod
    def from_compiled(cls, compiled: CompiledBody) -> PublishedTable:
        return cls(compiled.version, compiled.etag, compiled.body, compiled.max_age)

    def shared_value(self) -> tuple:
        """What goes into the shared cache: plain values, cheap to pickle and to load."""
        return (self.version, self.etag, self.body, self.max_age)

    @property
    def decider(self) -> CompiledTable:
        """The table compiled for decisions (the client's code), built once per process and version."""
        decider = self._decider
        if decider is None:
            import json

            decider = self._decider = CompiledTable.from_table(json.loads(self.body))
        return decider


_local: dict[int, PublishedTable] = {}


def published_table(tenant_id: int) -> PublishedTable:
    """The tenant's current published table (version 0, no rules, when nothing was published yet).

    Warm: one shared-cache read, no database query.
    """
    version = cache.get(CURRENT_KEY % tenant_id)
    if version is not None:
        local = _local.get(tenant_id)
        if local is not None and local.version == version:
            return local
        shared = cache.get(TABLE_KEY % (tenant_id, version))
        if shared is not None:
            return _remember(tenant_id, PublishedTable(*shared))
    return _load(tenant_id)


def _load(tenant_id: int) -> PublishedTable:
    from routing.selectors import published_table_compiled

    table = PublishedTable.from_compiled(published_table_compiled(tenant_id))
    cache.set(TABLE_KEY % (tenant_id, table.version), table.shared_value(), TABLE_TIMEOUT)
    cache.add(CURRENT_KEY % tenant_id, table.version, CURRENT_TIMEOUT)
    return _remember(tenant_id, table)


def _remember(tenant_id: int, table: PublishedTable) -> PublishedTable:
    if len(_local) >= LOCAL_MAX_TENANTS:
        _local.clear()
    _local[tenant_id] = table
    return table


def table_published(tenant_id: int, compiled: CompiledBody) -> None:
    """Make a newly committed version current for every process. Call after the transaction commits."""
    table = PublishedTable.from_compiled(compiled)
    cache.set(TABLE_KEY % (tenant_id, table.version), table.shared_value(), TABLE_TIMEOUT)
    cache.set(CURRENT_KEY % tenant_id, table.version, CURRENT_TIMEOUT)
    _remember(tenant_id, table)
    # Two publications that commit close together may run their callbacks in either order (in different
    # processes); whichever runs last re-reads the latest committed number so the newest always wins.
    from routing.selectors import latest_version_number

    latest = latest_version_number(tenant_id)
    if latest > table.version:
        cache.delete(CURRENT_KEY % tenant_id)


def forget_local() -> None:
    """Drop this process's copies (tests use it to act as a fresh process)."""
    _local.clear()
