"""Web UI for accounts, organisations, API keys and members. Views translate HTTP; services write."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants import selectors, services
from tenants.authentication import SESSION_TENANT_KEY
from tenants.forms import (
    ApiKeyCreateForm,
    MemberAddForm,
    MemberRoleForm,
    SignupForm,
    TenantCreateForm,
    add_service_error,
)
from tenants.models import Membership
from tenants.onboarding import checklist
from tenants.scopes import Scope
from tenants.throttling import blocked_for, client_address, record_failure


class LoginView(auth_views.LoginView):
    """Django's login, with failed attempts throttled per client address (429 with Retry-After)."""

    template_name = "tenants/login.html"

    def _throttled(self, form, wait: int):
        message = f"Too many failed attempts; try again in {wait} seconds."
        response = render(self.request, self.template_name, {"form": form, "throttled": message}, status=429)
        response["Retry-After"] = str(wait)
        return response

    def post(self, request, *args, **kwargs):
        wait = blocked_for([f"ip:{client_address(request)}"])
        if wait:
            return self._throttled(self.get_form(), wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        wait = record_failure([f"ip:{client_address(self.request)}"])
        if wait:
            return self._throttled(form, wait)
        return super().form_invalid(form)


def tenant_required(scope: str | None = None):
    """Signed in, in a tenant, and (optionally) holding `scope` through the membership role."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            context = request.tenant_context
            if not context:
                messages.info(request, "Create an organisation to get started.")
                return redirect("tenant_create")
            if scope and not context.has_scope(scope):
                raise PermissionDenied(f"Your role ({context.role}) cannot do this; it needs '{scope}'.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def signup(request):
    if request.user.is_authenticated:
        return redirect("onboarding")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, _ = services.user_get_or_create(email=form.cleaned_data["email"], password=form.cleaned_data["password1"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("tenant_create")
    return render(request, "tenants/signup.html", {"form": form})


@login_required
def tenant_create(request):
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = services.tenant_create(
                slug=form.cleaned_data["slug"], name=form.cleaned_data["name"], owner=request.user
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            request.session[SESSION_TENANT_KEY] = tenant.pk
            messages.success(request, f"Organisation {tenant.name} created. Here is what comes next.")
            return redirect("onboarding")
    return render(request, "tenants/tenant_create.html", {"form": form})


@login_required
@require_POST
def tenant_switch(request):
    tenant_id = request.POST.get("tenant_id", "")
    membership = (
        selectors.memberships_for_user(request.user)
        .filter(tenant_id=int(tenant_id) if tenant_id.isdigit() else 0)
        .first()
    )
    if membership is None:
        raise PermissionDenied("You are not a member of that organisation.")
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    return redirect(request.POST.get("next") or "onboarding")


@tenant_required()
def onboarding(request):
    steps = checklist(request.tenant_context.tenant_id)
    next_step = next((step for step in steps if step["live"] and not step["done"]), None)
    return render(request, "tenants/onboarding.html", {"steps": steps, "next_step": next_step})


@tenant_required(Scope.ADMIN)
def api_keys(request):
    context = request.tenant_context
    form = ApiKeyCreateForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = services.api_key_create(
                tenant=context.tenant, created_by=request.user, actor=context.actor, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            form = ApiKeyCreateForm()
    keys = selectors.api_keys_for_tenant(context.tenant_id)
    return render(request, "tenants/api_keys.html", {"form": form, "keys": keys, "created": created})


@tenant_required(Scope.ADMIN)
@require_POST
def api_key_revoke(request, key_id: int):
    context = request.tenant_context
    api_key = get_object_or_404(selectors.api_keys_for_tenant(context.tenant_id), pk=key_id)
    services.api_key_revoke(api_key=api_key, actor=context.actor)
    messages.success(request, f"Key {api_key.masked} revoked. It stops working within seconds.")
    return redirect("api_keys")


@tenant_required(Scope.ADMIN)
def members(request):
    context = request.tenant_context
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_add(
                tenant=context.tenant, actor_role=context.role, actor=context.actor, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_error(form, error)
        except PermissionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"{form.cleaned_data['email']} added.")
            return redirect("members")
    return render(
        request,
        "tenants/members.html",
        {"form": form, "memberships": selectors.members_for_tenant(context.tenant_id), "role_form": MemberRoleForm()},
    )


def _member_action(request, membership_id: int, act) -> None:
    context = request.tenant_context
    membership = get_object_or_404(selectors.members_for_tenant(context.tenant_id), pk=membership_id)
    try:
        act(membership, context)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    except PermissionError as error:
        messages.error(request, str(error))


@tenant_required(Scope.ADMIN)
@require_POST
def member_role(request, membership_id: int):
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("members")

    def act(membership: Membership, context):
        services.membership_change_role(
            membership=membership, role=form.cleaned_data["role"], actor_role=context.role, actor=context.actor
        )

    _member_action(request, membership_id, act)
    return redirect("members")


@tenant_required(Scope.ADMIN)
@require_POST
def member_remove(request, membership_id: int):
    _member_action(
        request,
        membership_id,
        lambda membership, context: services.membership_remove(
            membership=membership, actor_role=context.role, actor=context.actor
        ),
    )
    return redirect("members")


@tenant_required(Scope.ADMIN)
def audit_log(request):
    events = selectors.audit_events_for_tenant(request.tenant_context.tenant_id)[:200]
    return render(request, "tenants/audit_log.html", {"events": events})
