from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError

from tenants.models import Role
from tenants.scopes import ALL_SCOPES

User = get_user_model()


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form: on the field it names where the form has one."""
    if hasattr(error, "error_dict"):
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


class SignupForm(forms.Form):
    email = forms.EmailField()
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(username=email).exists():
            raise forms.ValidationError("An account with this email exists; log in instead.")
        return email

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        elif cleaned.get("password1"):
            try:
                password_validation.validate_password(cleaned["password1"], User(username=cleaned.get("email")))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=200, label="Organisation name")
    slug = forms.SlugField(max_length=50, help_text="Short id used in URLs, e.g. acme.")


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, initial="Production service")
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ALL_SCOPES], widget=forms.CheckboxSelectMultiple, initial=list(ALL_SCOPES)
    )
    expires_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Expires (optional)"
    )


class MemberAddForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
