"""Login, logout and the home page (the user's projects and queues)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from labeling.access import projects_for, visible_projects
from labeling.selectors.queue import my_queues
from labeling.views.login import ThrottledLoginView


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(user=request.user)
    return render(
        request,
        "labeling/home.html",
        {
            "projects": projects,
            "queues": my_queues(user=request.user),
            "review_slugs": set(
                projects_for(user=request.user, need="review").values_list("slug", flat=True)
            ),
        },
    )


urlpatterns = [
    path("", home, name="home"),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
