"""The first admin of a production install, from ANNOTATOR_ADMIN_USER and
ANNOTATOR_ADMIN_PASSWORD (the compose file's web service runs this at every start).

Creates the superuser when no user of that name exists; never changes an existing one (the
password set by its owner stays), and does nothing when the variables are not set."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the first admin from ANNOTATOR_ADMIN_USER / ANNOTATOR_ADMIN_PASSWORD."

    def handle(self, *args, **options):
        username = os.environ.get("ANNOTATOR_ADMIN_USER", "").strip()
        password = os.environ.get("ANNOTATOR_ADMIN_PASSWORD", "")
        if not username or not password:
            self.stdout.write(
                "ANNOTATOR_ADMIN_USER / ANNOTATOR_ADMIN_PASSWORD not set: no admin created "
                "(manage.py createsuperuser makes one by hand)."
            )
            return
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Admin {username!r} exists; left as it is.")
            return
        user = get_user_model()(username=username, is_staff=True, is_superuser=True)
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise CommandError(f"ANNOTATOR_ADMIN_PASSWORD: {' '.join(error.messages)}") from None
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"Admin {username!r} created.")
