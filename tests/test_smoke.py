"""The project boots: settings, URL conf, login page."""

import pytest
from django.test import Client


@pytest.mark.django_db
def test_login_page_renders() -> None:
    response = Client().get("/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content


@pytest.mark.django_db
def test_home_requires_login() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]
