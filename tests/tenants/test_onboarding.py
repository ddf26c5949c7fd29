import re

import pytest
from django.test import Client

from tenants.models import ApiKey, Membership, Role, Tenant

pytestmark = pytest.mark.django_db


def step_states(html: str) -> dict[str, str]:
    """Checklist step -> its CSS state: "done", "coming" (feature not live yet) or "" (to do)."""
    steps = re.findall(r'<li class="step ([a-z ]*)" data-step="([a-z_]+)"', html)
    return {key: classes.strip() for classes, key in steps}


def test_sign_up_create_tenant_create_key_and_checklist_ticks():
    client = Client(enforce_csrf_checks=False)
    response = client.post(
        "/signup/", {"email": "Ada@Example.com", "password1": "s3cure-pass-phrase", "password2": "s3cure-pass-phrase"}
    )
    assert response.status_code == 302 and response["Location"] == "/organisations/new/"

    # Before an organisation exists, tenant pages send the user to create one.
    assert client.get("/onboarding/")["Location"] == "/organisations/new/"

    response = client.post("/organisations/new/", {"name": "Ada Bank", "slug": "ada-bank"})
    assert response.status_code == 302 and response["Location"] == "/onboarding/"
    tenant = Tenant.objects.get(slug="ada-bank")
    assert Membership.objects.get(tenant=tenant).role == Role.OWNER

    page = client.get("/onboarding/").content.decode()
    states = step_states(page)
    assert states["api_key"] == ""  # live, not done
    assert "Create an API key" in page

    response = client.post("/settings/api-keys/", {"name": "svc", "scopes": ["routing:read", "examples:write"]})
    assert response.status_code == 200
    secret = re.search(r'<code id="new-key-value">([^<]+)</code>', response.content.decode()).group(1)
    assert ApiKey.objects.get(tenant=tenant).scopes == ["routing:read", "examples:write"]
    # Shown once: the next visit to the page does not show it again.
    assert secret not in client.get("/settings/api-keys/").content.decode()

    states = step_states(client.get("/onboarding/").content.decode())
    assert states["api_key"] == "done"

    # The key works against the API, as this tenant.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/tenant").json()["slug"] == "ada-bank"


def test_signup_rejects_mismatched_or_weak_passwords_and_duplicates():
    client = Client()
    response = client.post("/signup/", {"email": "a@example.com", "password1": "abc", "password2": "abd"})
    assert response.status_code == 200 and "The two passwords differ." in response.content.decode()
    client.post(
        "/signup/", {"email": "b@example.com", "password1": "s3cure-pass-phrase", "password2": "s3cure-pass-phrase"}
    )
    response = Client().post(
        "/signup/", {"email": "B@example.com", "password1": "s3cure-pass-phrase", "password2": "s3cure-pass-phrase"}
    )
    assert "log in instead" in response.content.decode()


def test_taken_slug_is_a_form_error(owner, tenant):
    client = Client()
    client.force_login(owner)
    response = client.post("/organisations/new/", {"name": "Another", "slug": "acme"})
    assert response.status_code == 200 and "is taken" in response.content.decode()


def test_login_and_logout(owner):
    client = Client()
    response = client.post("/login/", {"username": "owner@example.com", "password": "correct-horse-battery-staple"})
    assert response.status_code == 302
    assert client.post("/logout/").status_code == 302
    assert client.get("/onboarding/").status_code == 302


def test_forms_need_csrf(owner, tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/settings/api-keys/", {"name": "x", "scopes": ["admin"]}).status_code == 403


def test_viewer_cannot_open_key_or_member_pages(tenant):
    from tests.factories import make_membership

    viewer = make_membership(tenant, Role.VIEWER)
    client = Client()
    client.force_login(viewer.user)
    assert client.get("/settings/api-keys/").status_code == 403
    assert client.get("/settings/members/").status_code == 403
    assert client.get("/onboarding/").status_code == 200


def test_revoke_and_member_pages(owner, tenant):
    from tests.factories import make_api_key, make_user

    key, _ = make_api_key(tenant)
    client = Client()
    client.force_login(owner)
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    make_user("teammate@example.com")
    client.post("/settings/members/", {"email": "teammate@example.com", "role": "viewer"})
    assert "teammate@example.com" in client.get("/settings/members/").content.decode()
    assert "api_key.revoked" in client.get("/settings/audit-log/").content.decode()


def test_admin_pages_render_for_every_model(owner, tenant, admin_client):
    from django.contrib import admin

    owner.is_staff = owner.is_superuser = True
    owner.save()
    client = Client()
    client.force_login(owner)
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


def test_every_product_model_has_an_admin():
    from django.apps import apps
    from django.contrib import admin

    missing = [
        model.__name__
        for app in ("tenants", "training", "routing")
        for model in apps.get_app_config(app).get_models()
        if model not in admin.site._registry
    ]
    assert not missing, f"register these models in the admin: {missing}"
