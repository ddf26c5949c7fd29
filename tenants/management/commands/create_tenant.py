from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services


class Command(BaseCommand):
    help = "Create a tenant with an owner (the user is created when missing) and say how to log in."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="Owner's email")
        parser.add_argument("--name", default="", help="Display name (defaults to the slug)")
        parser.add_argument("--password", default=None, help="Password for a newly created owner")

    def handle(self, *args, slug, owner, name, password, **options):
        user, created = services.user_get_or_create(email=owner, password=password)
        try:
            tenant = services.tenant_create(slug=slug, name=name or slug, owner=user)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} owned by {user.email}."))
        if created and not password:
            self.stdout.write(
                f"{user.email} has no password yet: set one with `python manage.py changepassword {user.username}`,"
                " then log in at /login/."
            )
        else:
            self.stdout.write(f"Log in at /login/ as {user.email}.")
