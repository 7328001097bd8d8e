"""A Django project for tests/test_django.py: the shop app's tasks on taskq.

Its redis-server comes from $TASKQ_URL and its sqlite database from $TASKQ_DJANGO_DB (the tests
give each run its own)."""

import os

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["taskq.contrib.django", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("TASKQ_DJANGO_DB", ":memory:")}}
TASKS = {
    "default": {
        "BACKEND": "taskq.contrib.django.TaskqBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"url": os.environ.get("TASKQ_URL", "redis://localhost:6379/0"), "namespace": "shop",
                    "retries": 1},
    },
    # the same Redis and namespace, storing each job when the transaction commits
    "on_commit": {
        "BACKEND": "taskq.contrib.django.TaskqBackend",
        "QUEUES": ["default", "emails"],
        "ENQUEUE_ON_COMMIT": True,
        "OPTIONS": {"url": os.environ.get("TASKQ_URL", "redis://localhost:6379/0"), "namespace": "shop",
                    "retries": 1},
    },
}
LOGGING_CONFIG = None
