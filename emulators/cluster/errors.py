"""Kubernetes ``Status`` errors raised by the cluster simulator.

The object store, patch engine, selectors and admission chain raise :class:`ApiError`; the HTTP server
(``server.py``) turns it into a response with the same status code and body, and in-process callers
(the scheduler, kubelet and controllers of the simulator) catch it and read ``.code``/``.reason``.
Bodies follow ``k8s.io/apimachinery/pkg/api/errors``: ``details.kind`` is the plural resource and
``details.group`` the API group (absent for the core group).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed API call, carrying the Kubernetes ``Status`` body the real apiserver would send."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _details(plural: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        status_body(404, "NotFound", f'{_qualified(plural, group)} "{name}" not found', _details(plural, group, name))
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        status_body(
            409,
            "AlreadyExists",
            f'{_qualified(plural, group)} "{name}" already exists',
            _details(plural, group, name),
        )
    )


def conflict(plural: str, group: str, name: str, cause: str | None = None) -> ApiError:
    why = cause or ("the object has been modified; please apply your changes to the latest version and try again")
    return ApiError(
        status_body(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
            _details(plural, group, name),
        )
    )


def invalid(kind: str, group: str, name: str, field: str, *, cause_reason: str, detail: str) -> ApiError:
    """422 with one cause; ``cause_reason`` is e.g. ``FieldValueRequired`` / ``FieldValueInvalid``."""
    message = f'{kind}.{group} "{name}" is invalid: ' if group else f'{kind} "{name}" is invalid: '
    message += f"{field}: {detail}"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": cause_reason, "message": detail, "field": field}]
    return ApiError(status_body(422, "Invalid", message, details))


def unprocessable(message: str) -> ApiError:
    """422 without object details, as the apiserver answers a JSON patch that cannot be applied."""
    return ApiError(status_body(422, "Invalid", message, {}))


def bad_request(message: str) -> ApiError:
    return ApiError(status_body(400, "BadRequest", message))


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(
        status_body(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
        )
    )


def expired(requested: int, oldest: int) -> ApiError:
    return ApiError(status_body(410, "Expired", f"too old resource version: {requested} ({oldest})"))


def internal_error(message: str) -> ApiError:
    return ApiError(
        status_body(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            {"causes": [{"message": message}]},
        )
    )


def method_not_allowed(message: str) -> ApiError:
    return ApiError(status_body(405, "MethodNotAllowed", message))
