from django.shortcuts import redirect, render


def home(request):
    if request.user.is_authenticated:
        return redirect("onboarding")
    return render(request, "home.html")
