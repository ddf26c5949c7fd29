def register(router) -> list:
    """Register viewsets on the shared router; return plain paths (relative to /api/v1/)."""
    return []
