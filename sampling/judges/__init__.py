"""LLM-as-judge evaluators that Flywheel runs itself (issue 13): configuration, the
OpenAI-compatible client, execution on the ``judges`` Celery queue, and calibration against human
labels. A Django app of its own (label ``judges``) inside ``sampling``; see docs/judges.md."""
