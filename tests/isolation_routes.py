"""Routes without an object id in the URL, with where their tenant isolation is tested.
Each area adds its own dict; the matrix merges them."""

TENANTS: dict[str, str] = {}
EXAMPLES: dict[str, str] = {}
JOBS: dict[str, str] = {}
ROUTING: dict[str, str] = {}

NON_OBJECT_ROUTES: dict[str, str] = {**TENANTS, **EXAMPLES, **JOBS, **ROUTING}
