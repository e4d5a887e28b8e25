from django.apps import AppConfig


class SamplingConfig(AppConfig):
    name = "sampling"
    verbose_name = "Sampling"

    def ready(self) -> None:
        # Hook receivers (scoring after ingest, retrain after labels, the demo's first run), the
        # "eval" export kind and sampling's pages in every project's sub-navigation: labeling
        # reaches sampling only through these registrations.
        from labeling.context_processors import register_project_page
        from sampling import evalset, receivers  # noqa: F401

        register_project_page("Dashboard", "read", "project-dashboard", position=30)
        register_project_page("Strategies", "configure", "project-strategies", position=40)
        register_project_page("Alerts", "configure", "project-alerts", position=42)
        register_project_page("Data", "read", "data-browser", position=35)
        from labeling import hooks

        hooks.provide("strategy_names", _strategy_names)


def _strategy_names(*, project_id: int) -> dict[int, str]:
    from sampling.models import SamplingStrategy

    return dict(SamplingStrategy.objects.filter(project_id=project_id).values_list("id", "name"))
