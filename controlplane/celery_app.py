"""The one Celery app. Queues are an Enum so a typo is an AttributeError, not a silently unused queue."""

import enum
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.local")


class Queue(enum.StrEnum):
    DEFAULT = "default"
    INGEST = "ingest"  # file uploads: CPU and I/O bound, any worker
    TRAINING = "training"  # fine-tuning: GPU workers consume only this queue, one job at a time


app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
