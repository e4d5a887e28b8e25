"""``manage.py createuser USERNAME --project SLUG --role ROLE [--token] [--password PW]``."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from labeling.models import Project, Role
from labeling.services.projects import membership_add


class Command(BaseCommand):
    help = "Create a user (or reuse an existing one), give them a role in a project, print a token."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--token", action="store_true", help="print an API token")
        parser.add_argument("--password", help="set this password (default: a random one, printed)")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r}.")
        User = get_user_model()
        username = options["username"]
        user = User.objects.filter(username=username).first()
        password = options["password"]
        if user is None:
            generated = password is None
            password = password or secrets.token_urlsafe(12)
            user = User.objects.create_user(username, options["email"], password)
            self.stdout.write(f"created user {username}")
            if generated:
                self.stdout.write(f"password: {password}")
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"updated the password of {username}")
        membership = membership_add(project=project, user=user, role=options["role"])
        self.stdout.write(f"{username} is {membership.role} in {project.slug}")
        if options["token"]:
            token, _ = Token.objects.get_or_create(user=user)
            self.stdout.write(f"token: {token.key}")
