"""The hot-path cache of published routing tables.

Two levels, so that a warm request makes no database query and, per process, deserialises nothing:

- the shared Django cache (Redis in production, files on one machine) holds, per tenant, the number of the
  current published version (``routing:current:<tenant id>``) and, per version, the compiled bytes and ETag
  (``routing:table:<tenant id>:<version>``; immutable, so they never need invalidating);
- each process keeps a local copy of each tenant's table object, served while its version equals the shared
  current number. A process compares the two at most once per ROUTING_TABLE_RECHECK_SECONDS (default 1 s;
  0 checks on every request), so a publication or rollback reaches every web process within that interval,
  and the process that published serves it at once;
- likewise each process trusts a key it authenticated for ROUTING_KEY_MEMO_SECONDS (default 1 s) before it
  reads the shared key cache again, so a revocation takes effect within a second everywhere (at once in the
  process that saved it). A warm request then makes no query and, most of the time, no shared-cache read.

Publishing sets the current number after the transaction commits (`table_published`); a process that finds
no number loads the latest version from the database and *adds* the number (never overwrites), so a reader
that read the database just before a publish committed cannot put the old number back over the new one.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db.models.signals import post_save
from django.dispatch import receiver

from routing.compiler import CompiledBody
from routing.decision import CompiledTable
from tenants.authentication import authenticate_api_key
from tenants.context import TenantContext
from tenants.models import ApiKey
from tenants.services import api_key_hash

CURRENT_KEY = "routing:current:%d"
TABLE_KEY = "routing:table:%d:%d"
# The current number expires now and then so that a lost invalidation (a cache write that failed) heals
# itself; the compiled bytes of a version never change, so they may live long.
CURRENT_TIMEOUT = 600
TABLE_TIMEOUT = 7 * 24 * 3600
# Bound on the per-process copies (one per tenant that called this process): clearing now and then is
# cheaper than an LRU on the hot path and only costs one shared read per tenant afterwards.
LOCAL_MAX_TENANTS = 10_000
# A process re-reads the shared entries (the table's current version, the key's record) at most once a second:
# each read is a file read or a network round trip that costs as much as the rest of the endpoint, and a second
# is nothing next to the callers' own cache (max-age, 30 s by default) or the key cache's TTL (30 s).
DEFAULT_RECHECK_SECONDS = 1.0
DEFAULT_KEY_MEMO_SECONDS = 1.0
_monotonic = time.monotonic


def _seconds(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


# ROUTING_TABLE_RECHECK_SECONDS: how long a process may serve its local copy of a table before it compares the
# version with the shared cache again (0: on every request). A publication made by a process is served by that
# process at once; other processes follow within this interval.
_recheck = _seconds("ROUTING_TABLE_RECHECK_SECONDS", DEFAULT_RECHECK_SECONDS)
# ROUTING_KEY_MEMO_SECONDS: how long a process may trust a key it authenticated for the table endpoint before it
# reads the shared key cache again (0: on every request). A revocation saved by a process takes effect in it at
# once (see _forget_revoked_key); in other processes within this interval, on top of the shared cache's own rule.
_key_memo_seconds = _seconds("ROUTING_KEY_MEMO_SECONDS", DEFAULT_KEY_MEMO_SECONDS)


@receiver(setting_changed)
def _reload_intervals(*, setting, **kwargs) -> None:
    global _recheck, _key_memo_seconds
    if setting == "ROUTING_TABLE_RECHECK_SECONDS":
        _recheck = _seconds(setting, DEFAULT_RECHECK_SECONDS)
    elif setting == "ROUTING_KEY_MEMO_SECONDS":
        _key_memo_seconds = _seconds(setting, DEFAULT_KEY_MEMO_SECONDS)


_key_memo: dict[str, tuple[float, TenantContext]] = {}


def table_key_context(plaintext: str) -> TenantContext:
    """Authenticate an API key for the table endpoint; AuthenticationFailed as `authenticate_api_key`.

    Memoised per process for ROUTING_KEY_MEMO_SECONDS (a successful authentication only: unknown, revoked and
    expired keys are asked about every time)."""
    secret_hash = api_key_hash(plaintext)
    memo = _key_memo.get(secret_hash)
    if memo is not None and _monotonic() < memo[0]:
        return memo[1]
    context = authenticate_api_key(plaintext)
    if _key_memo_seconds:
        if len(_key_memo) >= LOCAL_MAX_TENANTS:
            _key_memo.clear()
        _key_memo[secret_hash] = (_monotonic() + _key_memo_seconds, context)
    return context


@receiver(post_save, sender=ApiKey)
def _forget_revoked_key(sender, instance: ApiKey, **kwargs) -> None:
    """A key saved in this process (revoked, expiry changed) is authenticated afresh on its next request."""
    _key_memo.pop(instance.secret_hash, None)


class PublishedTable:
    """One tenant's published table as served: bytes, strong ETag, Cache-Control; the decision table lazily."""

    __slots__ = ("_decider", "body", "cache_control", "checked_until", "etag", "max_age", "version")

    def __init__(self, version: int, etag: str, body: bytes, max_age: int):
        self.version = version
        self.etag = etag
        self.body = body
        self.max_age = max_age
        self.cache_control = f"private, max-age={max_age}"
        self._decider = None
        self.checked_until = 0.0  # monotonic time until which the local copy is served without a check

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

    Warm: at most one shared-cache read (none within ROUTING_TABLE_RECHECK_SECONDS of the last check), no
    database query.
    """
    local = _local.get(tenant_id)
    if local is not None and _recheck and _monotonic() < local.checked_until:
        return local
    version = cache.get(CURRENT_KEY % tenant_id)
    if version is not None:
        if local is not None and local.version == version:
            return _checked(local)
        shared = cache.get(TABLE_KEY % (tenant_id, version))
        if shared is not None:
            return _remember(tenant_id, PublishedTable(*shared))
    return _load(tenant_id)


def _checked(table: PublishedTable) -> PublishedTable:
    if _recheck:
        table.checked_until = _monotonic() + _recheck
    return table


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
    return _checked(table)


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
    """Drop this process's copies of tables and keys (tests use it to act as a fresh process)."""
    _local.clear()
    _key_memo.clear()
