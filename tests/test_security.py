"""Security settings: ``check --deploy``, security headers, CSRF on session POSTs, login throttle.

Covered elsewhere (not repeated): the ingestion-token rate limit (tests/test_auth_ingest.py,
429 after the per-token budget), the audit log of label edits and adjudications
(tests/test_annotations.py, ``annotation.edited`` / ``annotation.adjudicated`` rows), secrets only
from the environment (tests/test_settings.py: no SECRET_KEY with DEBUG off -> refuses to start).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Export, Project, Role

ROOT = Path(__file__).resolve().parent.parent

# Deploy-check warnings left on purpose, each with its reason (docs/security.md).
EXPLAINED = {
    # HSTS preload is a one-way commitment for the whole domain: opt in with SECURE_HSTS_PRELOAD=1.
    "security.W021",
}


def test_check_deploy_has_no_unexplained_warnings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "FLYWHEEL"))}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="flywheel.example.com",
        DJANGO_SETTINGS_MODULE="flywheel_site.settings",
        FLYWHEEL_VAR_DIR=str(tmp_path),
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    found = {word.strip("():") for word in output.split() if word.startswith("(security.")}
    assert found <= EXPLAINED, output


@pytest.fixture
def secure_client(settings: Any) -> Client:
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return Client()


@pytest.mark.django_db
def test_security_headers_on_pages_and_api(secure_client: Client) -> None:
    for path in ("/login/", reverse("labeling_api:projects")):
        response = secure_client.get(path, secure=True)
        assert response["X-Frame-Options"] == "DENY", path
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "same-origin", path
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert response["Strict-Transport-Security"].startswith("max-age=31536000"), path


def test_session_cookie_is_http_only(
    project: Project, member: Callable[..., Any], settings: Any
) -> None:
    member(Role.ADMIN, username="cookie-admin")
    response = Client().post("/login/", {"username": "cookie-admin", "password": "pw-test-12345"})
    assert response.status_code == 302
    assert response.cookies[settings.SESSION_COOKIE_NAME]["httponly"]


# --- CSRF -------------------------------------------------------------------------------------
def test_csrf_enforced_on_session_form_posts(project: Project, member: Callable[..., Any]) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(member(Role.ADMIN))
    url = reverse("project-exports", kwargs={"slug": project.slug})
    refused = browser.post(url, {"kind": "sft"})
    assert refused.status_code == 403
    assert not Export.objects.exists()
    page = browser.get(url)
    token = page.cookies["csrftoken"].value
    accepted = browser.post(url, {"kind": "sft", "csrfmiddlewaretoken": token})
    assert accepted.status_code != 403


def test_csrf_enforced_on_session_api_posts(project: Project, member: Callable[..., Any]) -> None:
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(member(Role.ADMIN))
    url = reverse("labeling_api:exports", kwargs={"slug": project.slug})
    refused = api.post(url, {"kind": "sft"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Export.objects.exists()


def test_token_api_posts_need_no_csrf(project: Project, api_as: Callable[..., APIClient]) -> None:
    api = api_as(Role.ADMIN)
    api.enforce_csrf_checks = True
    response = api.post(
        reverse("labeling_api:exports", kwargs={"slug": project.slug}),
        {"kind": "sft"},
        format="json",
    )
    assert response.status_code == 202


# --- Login throttle ---------------------------------------------------------------------------
@pytest.fixture
def login_limits(settings: Any) -> Iterator[None]:
    settings.FLYWHEEL = {
        **settings.FLYWHEEL,
        "LOGIN_MAX_FAILURES_PER_USER": 3,
        "LOGIN_MAX_FAILURES_PER_IP": 5,
    }
    cache.clear()
    yield
    cache.clear()


def test_login_throttled_after_failures(
    project: Project, member: Callable[..., Any], login_limits: None
) -> None:
    member(Role.ANNOTATOR, username="alice")
    browser = Client()
    for _ in range(3):
        failed = browser.post("/login/", {"username": "alice", "password": "wrong"})
        assert failed.status_code == 200  # the form again, with its error
    blocked = browser.post("/login/", {"username": "alice", "password": "pw-test-12345"})
    assert blocked.status_code == 429
    assert "Too many failed sign-in attempts" in blocked.content.decode()
    assert int(blocked["Retry-After"]) > 0
    assert "_auth_user_id" not in browser.session  # not even the right password gets in
    # Another address is not affected.
    other = Client(REMOTE_ADDR="10.0.0.9")
    ok = other.post("/login/", {"username": "alice", "password": "pw-test-12345"})
    assert ok.status_code == 302


def test_login_throttle_per_address_across_usernames(
    project: Project, member: Callable[..., Any], login_limits: None
) -> None:
    member(Role.ANNOTATOR, username="bob")
    browser = Client()
    for i in range(5):
        assert (
            browser.post("/login/", {"username": f"guess{i}", "password": "x"}).status_code == 200
        )
    assert (
        browser.post("/login/", {"username": "bob", "password": "pw-test-12345"}).status_code == 429
    )


def test_successful_login_clears_the_user_counter(
    project: Project, member: Callable[..., Any], login_limits: None
) -> None:
    member(Role.ANNOTATOR, username="carol")
    browser = Client()
    for _ in range(2):
        browser.post("/login/", {"username": "carol", "password": "wrong"})
    assert (
        browser.post("/login/", {"username": "carol", "password": "pw-test-12345"}).status_code
        == 302
    )
    browser.logout()
    for _ in range(2):
        assert (
            browser.post("/login/", {"username": "carol", "password": "wrong"}).status_code == 200
        )
    assert (
        browser.post("/login/", {"username": "carol", "password": "pw-test-12345"}).status_code
        == 302
    )
