"""The onboarding checklist. Apps further down the stack (training, routing) register their steps in
their AppConfig.ready(), so `tenants` never imports them; a step nobody registered yet shows as
"coming next".
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class OnboardingStep:
    key: str
    title: str
    description: str
    is_done: Callable[[int], bool] | None = None  # tenant id -> done; None while the feature is not live
    url_name: str | None = None


_STEPS: dict[str, OnboardingStep] = {}
_ORDER = ("api_key", "task", "examples", "training", "route")
_PLACEHOLDERS = {
    "api_key": OnboardingStep("api_key", "Create an API key", "Your services authenticate with it."),
    "task": OnboardingStep("task", "Register a task", "A narrow task: classification, extraction, translation."),
    "examples": OnboardingStep("examples", "Upload examples", "500-2,000 logged requests with the frontier's answers."),
    "training": OnboardingStep("training", "Train a small model", "LoRA fine-tuning, evaluated against the frontier."),
    "route": OnboardingStep("route", "Publish a route", "Send confident answers to the small model."),
}


def register_step(step: OnboardingStep) -> None:
    if step.key not in _ORDER:
        raise ValueError(f"Unknown onboarding step {step.key!r}; known: {', '.join(_ORDER)}")
    _STEPS[step.key] = step


def checklist(tenant_id: int) -> list[dict]:
    """The steps in order, each with `done`, `live` (feature available) and a link."""
    items = []
    for key in _ORDER:
        step = _STEPS.get(key, _PLACEHOLDERS[key])
        live = step.is_done is not None
        url = None
        if step.url_name:
            try:
                url = reverse(step.url_name)
            except NoReverseMatch:
                url = None
        items.append(
            {
                "key": key,
                "title": step.title,
                "description": step.description,
                "live": live,
                "done": bool(live and step.is_done(tenant_id)),
                "url": url,
            }
        )
    return items
