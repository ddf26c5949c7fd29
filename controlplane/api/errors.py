"""One JSON error envelope for every API error:

    {"error": {"status": 400, "code": "invalid", "message": "...", "details": {...}}}

`details` carries field errors (field -> list of messages) or per-row errors where a service gives them.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def error_body(*, status_code: int, code: str, message: str, details=None) -> dict:
    body = {"status": status_code, "code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def _first_message(details) -> str:
    if isinstance(details, dict):
        for field, value in details.items():
            message = _first_message(value)
            return message if field in ("non_field_errors", "__all__", "detail") else f"{field}: {message}"
    if isinstance(details, list) and details:
        return _first_message(details[0])
    return str(details)


def _django_validation_details(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {field: [str(m) for e in errors for m in e.messages] for field, errors in error.error_dict.items()}
    return {"non_field_errors": [str(m) for m in error.messages]}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_details(exc))
    elif isinstance(exc, PermissionError | DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DatabaseError):
        # The database is down or overloaded: fail fast with a retryable status instead of a 500 page.
        logger.exception("database error while serving %s", context["request"].path)
        return Response(
            error_body(status_code=503, code="database_unavailable", message="The database is unavailable; retry."),
            status=503,
            headers={"Retry-After": "5"},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail
        response.data = error_body(
            status_code=response.status_code, code="invalid", message=_first_message(details), details=details
        )
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(status_code=response.status_code, code=code, message=str(detail))
    return response


def json_error_view(status_code: int, code: str, message: str):
    def view(request, exception=None):
        return JsonResponse(error_body(status_code=status_code, code=code, message=message), status=status_code)

    return view


api_not_found = json_error_view(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
api_server_error = json_error_view(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "Internal server error.")
