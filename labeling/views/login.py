"""The login page with a failed-attempt throttle.

Failed logins are counted in the cache per (client IP, username) and per client IP over a sliding
window (``LOGIN_WINDOW_SECONDS``). Once either count reaches its limit the page answers 429 with a
message, without checking the password, until the window passes. A successful login clears the
(IP, username) counter. The cache is Redis in production (shared by every web process) and
process-local memory in development and tests.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from flywheel_site.app_settings import setting


def _limits() -> tuple[int, int, int]:
    """Window (s), failures per client IP and username, failures per client IP."""
    return (
        setting("LOGIN_WINDOW_SECONDS"),
        setting("LOGIN_MAX_FAILURES_PER_USER"),
        setting("LOGIN_MAX_FAILURES_PER_IP"),
    )


def _keys(request: HttpRequest) -> tuple[str, str]:
    ip = request.META.get("REMOTE_ADDR", "") or "unknown"
    username = str(request.POST.get("username", "")).strip().lower()[:150]
    digest = hashlib.sha256(f"{ip}\0{username}".encode()).hexdigest()[:32]
    return f"login-fail:u:{digest}", f"login-fail:ip:{ip}"


def _bump(key: str, window: int) -> None:
    if cache.add(key, 1, timeout=window):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)


class ThrottledLoginView(auth_views.LoginView):
    """Django's LoginView; 429 after too many failed attempts from one address."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        window, per_user, per_ip = _limits()
        user_key, ip_key = _keys(request)
        counts = cache.get_many([user_key, ip_key])
        if counts.get(user_key, 0) >= per_user or counts.get(ip_key, 0) >= per_ip:
            minutes = max(1, window // 60)
            response = self.render_to_response(
                self.get_context_data(
                    form=self.get_form(),
                    throttled=(
                        f"Too many failed sign-in attempts. Try again in {minutes} minutes."
                    ),
                )
            )
            response.status_code = 429
            response["Retry-After"] = str(window)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        window, _, _ = _limits()
        user_key, ip_key = _keys(self.request)
        _bump(user_key, window)
        _bump(ip_key, window)
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete(_keys(self.request)[0])
        return super().form_valid(form)
