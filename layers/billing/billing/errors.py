"""Domain errors and the one map from them to the API's error envelope."""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def envelope(self) -> dict[str, Any]:
        """Always the four fields (``details`` is ``{}`` when there is nothing more to say)."""
        return {
            "code": self.code,
            "message": self.message,
            "http_status_code": self.http_status,
            "details": dict(self.details),
        }


class ValidationFailed(BillingError):
    code = "validation_error"
    http_status = 400


class InvalidOperation(BillingError):
    code = "invalid_operation"
    http_status = 400


class Unauthorized(BillingError):
    code = "unauthorized"
    http_status = 401


class PermissionDenied(BillingError):
    code = "permission_denied"
    http_status = 403


class NotFound(BillingError):
    code = "not_found"
    http_status = 404


class MethodNotAllowed(BillingError):
    code = "method_not_allowed"
    http_status = 405


class AlreadyExists(BillingError):
    code = "already_exists"
    http_status = 409


class Conflict(BillingError):
    """The request is valid but the resource's state forbids it now (e.g. another collector holds an invoice)."""

    code = "conflict"
    http_status = 409


class VersionConflict(BillingError):
    code = "version_conflict"
    http_status = 409


class PayloadTooLarge(BillingError):
    code = "payload_too_large"
    http_status = 413


class TooManyRequests(BillingError):
    code = "too_many_requests"
    http_status = 429


class ServiceUnavailable(BillingError):
    code = "service_unavailable"
    http_status = 503


def not_found(entity: str, entity_id: str) -> NotFound:
    return NotFound(f"{entity} {entity_id} was not found", {"entity": entity, "id": entity_id})
