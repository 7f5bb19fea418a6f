"""One exception hierarchy for every failure, built from the server's error body.

The server answers every error as ``{"error": {"kind": KIND, "message": TEXT}}``; the
kind picks the class, so callers catch meaning (``NotFoundError``) rather than status codes.
"""

from __future__ import annotations

import json
from typing import Dict, Optional, Type


class MicrosandboxError(Exception):
    """Any failure of the SDK or the server.

    Attributes:
        kind: the server's error kind (``not_found``, ``conflict`` …), or one of the SDK's
            own (``transport``, ``server_start``, ``protocol``).
        status: the HTTP status, when the server answered one.
        message: what went wrong, in words.
    """

    def __init__(self, message: str, kind: str = "internal", status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status

    def __str__(self) -> str:
        where = f", HTTP {self.status}" if self.status is not None else ""
        return f"{self.message} ({self.kind}{where})"


class BadRequestError(MicrosandboxError):
    """Malformed JSON, wrong types or unknown fields (400)."""


class UnauthorizedError(MicrosandboxError):
    """Missing or wrong token (401)."""


class ForbiddenError(MicrosandboxError):
    """A guest file operation was not permitted (403)."""


class NotFoundError(MicrosandboxError):
    """No such sandbox, image, volume or guest path (404)."""


class ConflictError(MicrosandboxError):
    """A name is taken, or the sandbox is in the wrong state (409)."""


class PayloadTooLargeError(MicrosandboxError):
    """A JSON body over the server's limit (413)."""


class InvalidError(MicrosandboxError):
    """A spec or argument that cannot be used (422); the message names the field."""


class ExecTimeoutError(MicrosandboxError):
    """A command did not finish within its timeout and was killed (504)."""


class NoSpaceError(MicrosandboxError):
    """A disk or quota in the guest or on the host is full (507)."""


class UpstreamError(MicrosandboxError):
    """A registry failed (502)."""


class TransportError(MicrosandboxError):
    """The server could not be reached, or the connection broke or timed out."""


class ServerStartError(MicrosandboxError):
    """A local ``msb serve`` could not be started."""


class ProtocolError(MicrosandboxError):
    """The server answered something this SDK cannot read."""


_CLASSES: Dict[str, Type[MicrosandboxError]] = {
    "bad_request": BadRequestError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "payload_too_large": PayloadTooLargeError,
    "invalid": InvalidError,
    "timeout": ExecTimeoutError,
    "no_space": NoSpaceError,
    "upstream": UpstreamError,
}

_STATUS_KINDS: Dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid",
    502: "upstream",
    504: "timeout",
    507: "no_space",
}

_KIND_STATUSES: Dict[str, int] = {kind: status for status, kind in _STATUS_KINDS.items()}


def error_for(kind: str, message: str, status: Optional[int] = None) -> MicrosandboxError:
    """The exception for an error of ``kind`` (its class, or the base for unknown kinds)."""
    if status is None:
        status = _KIND_STATUSES.get(kind)
    return _CLASSES.get(kind, MicrosandboxError)(message, kind, status)


def error_from_response(status: int, body: bytes, reason: str = "") -> MicrosandboxError:
    """The exception for an error answer: its ``error`` body, else its status alone."""
    try:
        error = json.loads(body)["error"]
        return error_for(str(error["kind"]), str(error["message"]), status)
    except (ValueError, TypeError, KeyError):
        kind = _STATUS_KINDS.get(status, "internal")
        text = body.decode("utf-8", "replace").strip()
        return error_for(kind, text or reason or f"HTTP {status}", status)
