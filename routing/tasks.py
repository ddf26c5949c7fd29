"""Celery tasks of the routing app."""
