"""The exports page's progress bar follows a running export in a real browser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from labeling.models import Project, Role
from labeling.services.exports import export_create, export_run
from tests.export_fixtures import seed_mixed


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, databases="__all__")  # + export_reader
def test_progress_bar_follows_the_export_in_the_browser(
    live_server: Any, page: Any, project: Project, member: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    seed_mixed(project)
    session = Client()
    session.force_login(member(Role.ENGINEER))
    cookie = session.cookies[django_settings.SESSION_COOKIE_NAME].value
    export = export_create(project=project, kind="sft", enqueue=False)

    page.context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page.goto(live_server.url + reverse("project-exports", kwargs={"slug": project.slug}))
    row = page.locator(f'tr[data-export="{export.id}"]')
    expect(row).to_have_attribute("data-status", "pending")
    expect(row.locator(".download a")).to_have_count(0)

    export_run(export_id=export.id)  # the page is polling the API meanwhile

    expect(row).to_have_attribute("data-status", "done", timeout=15_000)
    expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "100")
    expect(row.locator(".rows")).to_have_text("2")
    link = row.locator(".download a")
    expect(link).to_have_attribute(
        "href", reverse("labeling_api:export-download-noslash", kwargs={"export_id": export.id})
    )
    parquet = row.locator(".parquet a")  # filled in by the same poll, from parquet_url
    expect(parquet).to_have_attribute(
        "href",
        reverse("labeling_api:export-download-noslash", kwargs={"export_id": export.id})
        + "?file=parquet",
    )
