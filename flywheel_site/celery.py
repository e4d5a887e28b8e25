"""The Celery app. Tasks live in each app's ``tasks`` package (``labeling.tasks``,
``sampling.tasks``) and in ``sampling.judges.tasks``; settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flywheel_site.settings")

app = Celery("flywheel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
