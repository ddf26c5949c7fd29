"""Factories for this area; each tenant-owned model served by the API is registered for the isolation matrix."""
