"""DRF authentication: project-scoped ingestion tokens (``Authorization: Ingest <key>``) and
users' API tokens (``Authorization: Token <key>``)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from labeling.access import IngestClient
from labeling.models import IngestToken
from labeling.rows import row_reader

KEY_PREFIX = "fwi_"
KEYWORD = "Ingest"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random ingestion key; only its hash is stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class IngestTokenAuthentication(authentication.BaseAuthentication):
    """Accepts ``Authorization: Ingest fwi_...`` (and ``Bearer fwi_...``)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2:
            return None
        scheme, raw = header[0].decode(errors="replace"), header[1]
        if scheme not in (KEYWORD, "Bearer"):
            return None
        key = raw.decode(errors="replace")
        if not key.startswith(KEY_PREFIX):
            return None
        token = (
            IngestToken.objects.select_related("project")
            .filter(key_hash=hash_key(key), revoked_at__isnull=True)
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked ingestion token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            IngestToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return IngestClient(token=token), token

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class UserTokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Token`` authentication (same header, same errors) with the token and its user read
    by one hand-written statement: it runs on every annotator request (labeling.rows says why)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        token_r, user_r = row_reader(Token, "t"), row_reader(get_user_model(), "u")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {token_r.columns}, {user_r.columns} FROM {token_r.table} t "
                f"JOIN {user_r.table} u ON u.id = t.user_id WHERE t.key = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = token_r.read(row), user_r.read(row, token_r.width)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token
