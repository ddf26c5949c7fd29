from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from tenants.navigation import register_nav
        from tenants.onboarding import OnboardingStep, register_step
        from training.models import Example, ModelVersion, Task

        register_nav(10, "Dashboard", "dashboard")
        register_nav(20, "Tasks", "task_list")
        register_nav(25, "Training", "training_job_list")
        register_step(
            OnboardingStep(
                key="task",
                title="Register a task",
                description="Name a narrow task (classification, extraction, translation), its frontier model and prices.",
                is_done=lambda tenant_id: Task.objects.for_tenant(tenant_id).exists(),
                url_name="task_create",
            )
        )
        register_step(
            OnboardingStep(
                key="examples",
                title="Upload examples",
                description="500-2,000 logged requests with the frontier model's answers (JSONL or CSV).",
                is_done=lambda tenant_id: Example.objects.for_tenant(tenant_id).exists(),
                url_name="task_list",
            )
        )
        register_step(
            OnboardingStep(
                key="training",
                title="Train a small model",
                description="LoRA fine-tuning, evaluated and calibrated against the frontier model's answers.",
                is_done=lambda tenant_id: ModelVersion.objects.for_tenant(tenant_id).exists(),
                url_name="task_list",
            )
        )

    def seed_demo(self, *, tenant, stdout) -> None:
        """Demo data for `make run`: filled in by training.demo when present."""
        try:
            from training.demo import seed_demo
        except ImportError:
            return
        seed_demo(tenant=tenant, stdout=stdout)
