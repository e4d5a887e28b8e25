"""manage.py ingest and manage.py createuser."""

from __future__ import annotations

import gzip
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from labeling.models import Interaction, Membership, Project


def _line(external_id: str) -> bytes:
    return orjson.dumps(
        {
            "external_id": external_id,
            "occurred_at": "2026-11-20T10:02:03Z",
            "messages": [{"role": "user", "content": "hi"}],
            "response": "hello",
        }
    )


@pytest.mark.django_db(transaction=True)
def test_ingest_command(tmp_path: Path, project: Project) -> None:
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join([_line("a"), b"{broken", _line("b"), _line("a")])))
    out = StringIO()
    call_command("ingest", str(path), "--project", "support-bot", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "created 2, duplicates 1, rejected 1" in text
    assert "line 2:" in text
    assert "malformed JSON" in text
    assert set(Interaction.objects.values_list("external_id", flat=True)) == {"a", "b"}
    assert not Interaction.objects.filter(processed_at__isnull=True).exists()
    with pytest.raises(CommandError, match="No project"):
        call_command("ingest", str(path), "--project", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_createuser_command(project: Project) -> None:
    out = StringIO()
    call_command(
        "createuser",
        "dana",
        "--project",
        "support-bot",
        "--role",
        "engineer",
        "--token",
        "--password",
        "s3cret-pass",
        stdout=out,
    )
    user = get_user_model().objects.get(username="dana")
    assert user.check_password("s3cret-pass")
    assert Membership.objects.get(project=project, user=user).role == "engineer"
    assert f"token: {Token.objects.get(user=user).key}" in out.getvalue()
    # Again with another role: the same user, the role changes, the same token.
    out = StringIO()
    call_command(
        "createuser", "dana", "--project", "support-bot", "--role", "admin", "--token", stdout=out
    )
    assert Membership.objects.get(project=project, user=user).role == "admin"
    assert f"token: {Token.objects.get(user=user).key}" in out.getvalue()
    assert get_user_model().objects.filter(username="dana").count() == 1
