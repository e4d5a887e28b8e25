from django.apps import AppConfig


class JudgesConfig(AppConfig):
    name = "sampling.judges"
    label = "judges"
    verbose_name = "Judges"

    def ready(self) -> None:
        # Judge new arrivals (a receiver of labeling.hooks' "interactions_processed") and the
        # Judges page in every project's sub-navigation.
        from labeling.context_processors import register_project_page
        from sampling.judges import receivers  # noqa: F401

        register_project_page("Judges", "configure", "project-judges", position=45)
