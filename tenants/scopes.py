"""API scopes and what each membership role may do.

An endpoint declares the scope it needs per HTTP method; a key carries the scopes it was created with,
and a signed-in user carries the scopes of their role in the current tenant.
"""

import enum


class Scope(enum.StrEnum):
    ROUTING_READ = "routing:read"
    ROUTING_WRITE = "routing:write"
    EXAMPLES_READ = "examples:read"
    EXAMPLES_WRITE = "examples:write"
    TRAINING_READ = "training:read"
    TRAINING_WRITE = "training:write"
    ADMIN = "admin"


ALL_SCOPES: tuple[str, ...] = tuple(scope.value for scope in Scope)
READ_SCOPES = (Scope.ROUTING_READ, Scope.EXAMPLES_READ, Scope.TRAINING_READ)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset(READ_SCOPES),
    "member": frozenset((*READ_SCOPES, Scope.EXAMPLES_WRITE, Scope.TRAINING_WRITE)),
    "admin": frozenset(ALL_SCOPES),
    "owner": frozenset(ALL_SCOPES),
}
