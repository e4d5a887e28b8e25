"""Celery tasks: exports."""
