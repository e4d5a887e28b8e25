from django.apps import AppConfig


class SamplingConfig(AppConfig):
    name = "sampling"
    verbose_name = "Sampling"

    def ready(self) -> None:
        # Hook receivers (scoring after ingest, retrain after labels, the demo's first run) and the
        # "eval" export kind: labeling reaches sampling only through these registrations.
        from sampling import evalset, receivers  # noqa: F401
