"""Compile a route table's content into the exact bytes served to tenants' services, once, at publish time.

`content` is what a RouteTableVersion stores (and what diffs and rollbacks work on):

    {"default": {"route": "frontier", "model": "gpt-4o" | null},
     "cache_max_age": 30,
     "rules": {"<task slug>": {"enabled": true, "model_version": "tickets-v2", "model_version_id": 12,
                               "base_model": "minilm-l6", "artifact": "/api/v1/model-versions/12/artifact",
                               "threshold": 0.83, "fallback": "gpt-4o", "canary": 100, "shadow": false}}}

The runtime table (the contract `routing/client.py` reads) keeps only the enabled rules and the contract's
fields, and adds the version, the tenant's slug and the publication time:

    {"version": 3, "tenant": "acme", "published_at": "2025-01-01T00:00:00Z",
     "default": {"route": "frontier", "model": null}, "rules": {"<task slug>": {...}}}

A null default model means "each task's own frontier model": the caller keeps calling what it called before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from routing.decision import ROUTE_FRONTIER

# The fields of a rule that the runtime table carries, in the order of the contract.
RUNTIME_RULE_FIELDS = (
    "model_version",
    "model_version_id",
    "base_model",
    "artifact",
    "threshold",
    "fallback",
    "canary",
    "shadow",
)
# Every field a rule has in a version's content; the diff compares these.
CONTENT_RULE_FIELDS = ("enabled", *RUNTIME_RULE_FIELDS)
DEFAULT_CACHE_MAX_AGE = 30


@dataclass(frozen=True, slots=True)
class CompiledBody:
    """The bytes of one published table, its strong ETag and how long callers may cache it."""

    version: int
    body: bytes
    etag: str
    max_age: int


def content_max_age(content: dict) -> int:
    """The Cache-Control max-age a published content asks for."""
    return int(content.get("cache_max_age", DEFAULT_CACHE_MAX_AGE))


def empty_content(*, default_model: str | None = None, cache_max_age: int = DEFAULT_CACHE_MAX_AGE) -> dict:
    """The content of a table with no rules: every task goes to the frontier."""
    return {
        "default": {"route": ROUTE_FRONTIER, "model": default_model or None},
        "cache_max_age": cache_max_age,
        "rules": {},
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def runtime_table(*, content: dict, version: int, tenant_slug: str, published_at: datetime | None) -> dict:
    """The table served at runtime: enabled rules only, contract fields only, sorted by task."""
    default = content.get("default") or {}
    rules = {}
    for task in sorted(content.get("rules") or {}):
        rule = content["rules"][task]
        if not rule.get("enabled", True):
            continue  # a disabled rule takes its task out of scope: the default applies
        rules[task] = {field: rule.get(field) for field in RUNTIME_RULE_FIELDS}
    return {
        "version": version,
        "tenant": tenant_slug,
        "published_at": _iso(published_at),
        "default": {"route": ROUTE_FRONTIER, "model": default.get("model") or None},
        "rules": rules,
    }


def etag_for(body: bytes) -> str:
    """A strong ETag: 128 bits of the body's SHA-256. The body names the tenant and the version, so two
    tenants' tables never share an ETag even when their rules are identical."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def compile_table(*, content: dict, version: int, tenant_slug: str, published_at: datetime | None) -> CompiledBody:
    """Serialise a version's content into compact JSON bytes (sorted keys: same content, same bytes)."""
    table = runtime_table(content=content, version=version, tenant_slug=tenant_slug, published_at=published_at)
    body = orjson.dumps(table, option=orjson.OPT_SORT_KEYS)
    max_age = content_max_age(content)
    return CompiledBody(version=version, body=body, etag=etag_for(body), max_age=max_age)


def diff_contents(old: dict, new: dict) -> dict:
    """Per task: rules added, removed and changed (field -> {"from", "to"}); and changes to the defaults."""
    old_rules, new_rules = old.get("rules") or {}, new.get("rules") or {}
    added = [{"task": task, "rule": new_rules[task]} for task in sorted(set(new_rules) - set(old_rules))]
    removed = [{"task": task, "rule": old_rules[task]} for task in sorted(set(old_rules) - set(new_rules))]
    changed = []
    for task in sorted(set(old_rules) & set(new_rules)):
        before, after = old_rules[task], new_rules[task]
        fields = {
            field: {"from": before.get(field), "to": after.get(field)}
            for field in CONTENT_RULE_FIELDS
            if before.get(field) != after.get(field)
        }
        if fields:
            changed.append({"task": task, "fields": fields})
    defaults = {}
    old_default, new_default = old.get("default") or {}, new.get("default") or {}
    if old_default.get("model") != new_default.get("model"):
        defaults["default_model"] = {"from": old_default.get("model"), "to": new_default.get("model")}
    if old.get("cache_max_age") != new.get("cache_max_age"):
        defaults["cache_max_age"] = {"from": old.get("cache_max_age"), "to": new.get("cache_max_age")}
    return {"added": added, "removed": removed, "changed": changed, "defaults": defaults}
