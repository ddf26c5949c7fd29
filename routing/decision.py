"""Routing decision logic shared by the server and the vendored client.

The one implementation lives in ``routing/client.py`` (standard library only) because tenants vendor
that single file; the server's ``/api/v1/routing/decide`` endpoint imports it from here, so both sides
decide identically. Importable without Django.
"""

from routing.client import (
    ROUTE_FRONTIER,
    ROUTE_SMALL,
    CompiledTable,
    Decision,
    decide_from_table,
)

__all__ = ["ROUTE_FRONTIER", "ROUTE_SMALL", "CompiledTable", "Decision", "decide_from_table"]
