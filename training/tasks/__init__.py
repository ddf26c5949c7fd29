"""Celery tasks of the training app (autodiscovered as `training.tasks`)."""

from training.tasks.ingest import *  # noqa: F403
from training.tasks.jobs import *  # noqa: F403
