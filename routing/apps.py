from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        from routing.models import RouteTableVersion
        from tenants.navigation import register_nav
        from tenants.onboarding import OnboardingStep, register_step

        register_nav(30, "Routing", "routing")
        register_step(
            OnboardingStep(
                key="route",
                title="Publish a route",
                description="Send the answers the small model is confident about to it; the rest to the frontier.",
                is_done=lambda tenant_id: RouteTableVersion.objects.for_tenant(tenant_id).exists(),
                url_name="routing",
            )
        )
