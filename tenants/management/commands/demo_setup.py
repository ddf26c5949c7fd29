import secrets

from django.core.management.base import BaseCommand

from tenants import services
from tenants.models import Tenant

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.com"


class Command(BaseCommand):
    help = "Create the demo tenant, its login and an API key (printed once, when first created). Idempotent."

    def handle(self, *args, **options):
        if Tenant.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write(
                f"Demo tenant ready: log in as {DEMO_EMAIL} (the password was printed when it was created; "
                f"reset it with `manage.py changepassword {DEMO_EMAIL}`)."
            )
            return
        password = secrets.token_urlsafe(9)
        user, _ = services.user_get_or_create(email=DEMO_EMAIL, password=password)
        tenant = services.tenant_create(slug=DEMO_SLUG, name="Demo Bank", owner=user)
        created = services.api_key_create(tenant=tenant, name="Demo key", created_by=user)
        from django.apps import apps

        for app_config in apps.get_app_configs():
            seed = getattr(app_config, "seed_demo", None)
            if seed:
                seed(tenant=tenant, stdout=self.stdout)
        banner = "=" * 72
        self.stdout.write(
            f"{banner}\nDemo tenant created (shown once, keep it):\n"
            f"  login:    {DEMO_EMAIL}\n  password: {password}\n  API key:  {created.plaintext}\n{banner}"
        )
