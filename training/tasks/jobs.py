"""Celery tasks for training jobs (queue: training)."""
