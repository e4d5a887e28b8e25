"""Login, logout and the home page (the user's projects and queues)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from labeling.access import visible_projects


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(user=request.user)
    return render(request, "labeling/home.html", {"projects": projects})


urlpatterns = [
    path("", home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
