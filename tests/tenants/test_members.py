import pytest
from rest_framework.test import APIClient

from tenants.authentication import SESSION_TENANT_KEY
from tenants.models import AuditEvent, Membership, Role
from tests.factories import make_membership, make_user

pytestmark = pytest.mark.django_db


def session_client(user, tenant) -> APIClient:
    client = APIClient()
    client.force_login(user)
    session = client.session
    session[SESSION_TENANT_KEY] = tenant.pk
    session.save()
    return client


def test_owner_adds_changes_and_removes_members(tenant, owner):
    client = session_client(owner, tenant)
    newcomer = make_user("new@example.com")
    response = client.post("/api/v1/members/", {"email": "New@Example.com", "role": "admin"}, format="json")
    assert response.status_code == 201, response.content
    membership_id = response.json()["id"]
    assert Membership.objects.get(pk=membership_id).user == newcomer
    assert (
        client.patch(f"/api/v1/members/{membership_id}", {"role": "viewer"}, format="json").json()["role"] == "viewer"
    )
    assert client.delete(f"/api/v1/members/{membership_id}").status_code == 204
    actions = list(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"member.added", "member.role_changed", "member.removed"} <= set(actions)


def test_admin_cannot_touch_owners(tenant, owner):
    admin = make_membership(tenant, Role.ADMIN)
    client = session_client(admin.user, tenant)
    owner_membership = Membership.objects.get(tenant=tenant, user=owner)
    assert client.patch(f"/api/v1/members/{owner_membership.pk}", {"role": "member"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/members/{owner_membership.pk}").status_code == 403
    make_user("x@example.com")
    assert (
        client.post("/api/v1/members/", {"email": "x@example.com", "role": "owner"}, format="json").status_code == 403
    )
    assert (
        client.post("/api/v1/members/", {"email": "x@example.com", "role": "member"}, format="json").status_code == 201
    )


def test_members_and_viewers_cannot_manage_members(tenant):
    for role in (Role.MEMBER, Role.VIEWER):
        client = session_client(make_membership(tenant, role).user, tenant)
        assert client.get("/api/v1/members/").status_code == 403


def test_last_owner_cannot_be_demoted_or_removed(tenant, owner):
    client = session_client(owner, tenant)
    membership = Membership.objects.get(tenant=tenant, user=owner)
    response = client.patch(f"/api/v1/members/{membership.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 400 and "last owner" in response.json()["error"]["message"]
    assert client.delete(f"/api/v1/members/{membership.pk}").status_code == 400
    assert Membership.objects.filter(pk=membership.pk, role=Role.OWNER).exists()


def test_adding_an_unknown_email_says_what_to_do(tenant, owner):
    response = session_client(owner, tenant).post("/api/v1/members/", {"email": "ghost@example.com"}, format="json")
    assert response.status_code == 400
    assert "sign up" in response.json()["error"]["message"]


def test_session_user_switches_tenant_and_sees_its_data(owner, tenant, other_tenant):
    Membership.objects.create(tenant=other_tenant, user=owner, role=Role.VIEWER)
    client = session_client(owner, tenant)
    assert client.get("/api/v1/tenant").json()["slug"] == "acme"
    client.post("/organisations/switch/", {"tenant_id": other_tenant.pk})
    body = client.get("/api/v1/tenant").json()
    assert body["slug"] == other_tenant.slug and body["role"] == "viewer"


def test_switching_to_a_tenant_you_are_not_in_is_refused(owner, tenant, other_tenant):
    client = session_client(owner, tenant)
    assert client.post("/organisations/switch/", {"tenant_id": other_tenant.pk}).status_code == 403
    assert client.get("/api/v1/tenant").json()["slug"] == "acme"


def test_session_writes_need_csrf(owner, tenant):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/api/v1/api-keys/", {"name": "x"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["error"]["message"]
