from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.models import Tenant
from tenants.scopes import ALL_SCOPES


class Command(BaseCommand):
    help = "Create an API key for a tenant; the key is printed alone on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--scope", action="append", dest="scopes", choices=ALL_SCOPES, help="Repeatable; all when omitted"
        )
        parser.add_argument("--name", default="CLI key")

    def handle(self, *args, slug, scopes, name, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant '{slug}'. Create it with `manage.py create_tenant {slug} --owner EMAIL`.")
        try:
            created = services.api_key_create(tenant=tenant, name=name, scopes=scopes, actor="manage.py")
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"Created key {created.api_key.masked} with scopes {', '.join(created.api_key.scopes)}.")
        self.stdout.write(created.plaintext)
