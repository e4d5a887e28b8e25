"""Navigation and page access: each page renders for the roles that may see it, 403/404 else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Project, Role
from tests.factories import MembershipFactory, UserFactory

CONFIG_PAGES = (
    "project-members",
    "project-schema",
    "project-settings",
    "project-strategies",
    "project-strategy-new",
    "project-webhooks",
)
READ_PAGES = ("project-dashboard",)
INGEST_PAGES = ("project-tokens",)  # engineers create ingestion tokens (as through the API)
INGESTERS = {Role.ENGINEER, Role.ADMIN}
ALL_ROLES = (Role.ANNOTATOR, Role.REVIEWER, Role.ENGINEER, Role.ADMIN)
READERS = {Role.REVIEWER, Role.ENGINEER, Role.ADMIN}


def browser_for(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("page", CONFIG_PAGES + READ_PAGES + INGEST_PAGES)
def test_page_access_by_role(
    page: str, role: str, project: Project, member: Callable[..., object]
) -> None:
    response = browser_for(member(role)).get(reverse(page, kwargs={"slug": project.slug}))
    if page in CONFIG_PAGES:
        allowed = role == Role.ADMIN
    else:
        allowed = role in (INGESTERS if page in INGEST_PAGES else READERS)
    assert response.status_code == (200 if allowed else 403)
    if allowed:
        # The project's sub-navigation is on the page, with the current page marked.
        assert b'class="subnav"' in response.content
        assert b'aria-current="page"' in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("page", CONFIG_PAGES + READ_PAGES + INGEST_PAGES + ("project-home",))
def test_outsider_gets_404(
    page: str, project: Project, other_project: Project, member: Callable[..., object]
) -> None:
    outsider = member(Role.ADMIN, other_project)
    response = browser_for(outsider).get(reverse(page, kwargs={"slug": project.slug}))
    assert response.status_code == 404


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(project: Project) -> None:
    response = Client().get(reverse("project-dashboard", kwargs={"slug": project.slug}))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_navigation_shows_what_the_role_may_open(
    project: Project, member: Callable[..., object]
) -> None:
    engineer = member(Role.ENGINEER)
    html = browser_for(engineer).get(reverse("project-dashboard", args=[project.slug])).content
    html = html.decode()
    assert reverse("project-dashboard", args=[project.slug]) in html
    for hidden in ("project-strategies", "project-schema", "project-members", "project-settings"):
        assert reverse(hidden, args=[project.slug]) not in html
    assert reverse("project-tokens", args=[project.slug]) in html  # engineers make tokens

    admin = member(Role.ADMIN)
    html = browser_for(admin).get(reverse("project-dashboard", args=[project.slug])).content
    for shown in ("project-dashboard", *CONFIG_PAGES[:4]):
        assert reverse(shown, args=[project.slug]).encode() in html


@pytest.mark.django_db
def test_project_switcher_lists_every_project_with_its_pages(
    project: Project, other_project: Project
) -> None:
    user = UserFactory()
    MembershipFactory(project=project, user=user, role=Role.ADMIN)
    MembershipFactory(project=other_project, user=user, role=Role.ENGINEER)
    html = browser_for(user).get(reverse("home")).content.decode()
    assert 'data-testid="project-switcher"' in html
    # Every page of every project is two clicks away: open the switcher, click the page.
    assert reverse("project-strategies", args=[project.slug]) in html
    assert reverse("project-dashboard", args=[other_project.slug]) in html
    assert reverse("project-strategies", args=[other_project.slug]) not in html


@pytest.mark.django_db
def test_project_home_redirects_to_the_first_page_of_the_role(
    project: Project, member: Callable[..., object]
) -> None:
    response = browser_for(member(Role.ENGINEER)).get(reverse("project-home", args=[project.slug]))
    assert response.status_code == 302
    assert response["Location"] == reverse("project-dashboard", args=[project.slug])


@pytest.mark.django_db
def test_empty_states_say_what_to_do_next(project: Project, member: Callable[..., object]) -> None:
    client = browser_for(member(Role.ADMIN))
    strategies = client.get(reverse("project-strategies", args=[project.slug])).content.decode()
    assert "No strategy yet." in strategies
    assert "js-run" not in strategies
    tokens = client.get(reverse("project-tokens", args=[project.slug])).content.decode()
    assert "No tokens yet." in tokens


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "shown"),
    [
        (Role.ANNOTATOR, ["Label"]),
        (Role.REVIEWER, ["Label", "Review", "Dashboard", "Data"]),
        (Role.ENGINEER, ["Dashboard", "Data", "Tokens", "Exports"]),
        (
            Role.ADMIN,
            [
                "Label",
                "Review",
                "Dashboard",
                "Data",
                "Strategies",
                "Alerts",
                "Judges",
                "Schema",
                "Queues",
                "Members",
                "Tokens",
                "Settings",
                "Webhooks",
                "Exports",
            ],
        ),
    ],
)
def test_sub_navigation_per_role(
    role: str, shown: list[str], project: Project, member: Callable[..., object]
) -> None:
    from labeling.context_processors import project_links

    links = project_links(slug=project.slug, role=role)
    assert [link.label for link in links] == shown
    # The project's landing page is the first of them.
    response = browser_for(member(role)).get(reverse("project-home", args=[project.slug]))
    assert response.status_code == 302
    assert response["Location"] == links[0].url
