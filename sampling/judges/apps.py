from django.apps import AppConfig


class JudgesConfig(AppConfig):
    name = "sampling.judges"
    label = "judges"
    verbose_name = "Judges"

    def ready(self) -> None:
        # Judge new arrivals: a receiver of labeling.hooks' "interactions_processed".
        from sampling.judges import receivers  # noqa: F401
