"""Celery application. Workers run only in production (a broker URL is configured);
without one, background jobs run in-process (see raptorflow.jobs)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raptorflow.settings")

app = Celery("raptorflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
