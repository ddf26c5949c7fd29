import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse

from controlplane.api.errors import error_body

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """An unreachable database answers 503 with Retry-After at once, for pages and API alike, instead
    of a 500: clients and load balancers retry a 503, and nothing half-written is left behind."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DatabaseError):
            return None
        logger.error("database unavailable while serving %s: %s", request.path, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(
                error_body(status_code=503, code="database_unavailable", message="The database is unavailable; retry."),
                status=503,
            )
        else:
            response = HttpResponse(
                "The service is briefly unavailable (database). Please retry in a few seconds.",
                status=503,
                content_type="text/plain",
            )
        response["Retry-After"] = "5"
        return response
