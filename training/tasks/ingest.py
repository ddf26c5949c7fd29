"""Celery tasks for example ingestion (queue: ingest)."""
