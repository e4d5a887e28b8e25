"""Celery tasks: queue."""
