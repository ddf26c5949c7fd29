from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from tenants.models import ApiKey
        from tenants.onboarding import OnboardingStep, register_step

        register_step(
            OnboardingStep(
                key="api_key",
                title="Create an API key",
                description="Your services use it to push examples and fetch the routing table.",
                is_done=lambda tenant_id: ApiKey.objects.for_tenant(tenant_id).filter(revoked_at=None).exists(),
                url_name="api_keys",
            )
        )
