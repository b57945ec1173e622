"""Celery application. Workers run only in production (a broker URL is configured);
without one, background jobs run in-process (see raptorflow.jobs)."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from raptorflow.request_context import current_request_id, set_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raptorflow.settings")

app = Celery("raptorflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# A job's log lines carry the id of the request that enqueued it (or the task id).
@before_task_publish.connect
def _send_request_id(headers=None, **kwargs):
    if headers is not None:
        headers.setdefault("request_id", current_request_id())


# The same id goes into the job's audit context (raptorflow.audit).
@task_prerun.connect
def _adopt_request_id(task=None, **kwargs):
    from raptorflow import audit

    request_id = getattr(task.request, "request_id", None)
    set_request_id(request_id if request_id and request_id != "-" else (task.request.id or "-"))
    audit.bind(audit.AuditContext(request_id=request_id if request_id and request_id != "-" else ""))


@task_postrun.connect
def _forget_request_id(**kwargs):
    from raptorflow import audit

    set_request_id("-")
    audit.bind(audit.AuditContext())
