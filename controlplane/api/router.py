"""The one API router: every app registers its resources here, all under /api/v1/."""

from rest_framework.routers import SimpleRouter

from routing.api.urls import register as register_routing
from tenants.api.urls import register as register_tenants
from training.api.urls import register as register_training


class Router(SimpleRouter):
    # Accept both `/api/v1/api-keys` and `/api/v1/api-keys/`: clients built from the docs use either.
    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
extra_paths = [*register_tenants(router), *register_training(router), *register_routing(router)]
urlpatterns = [*extra_paths, *router.urls]
