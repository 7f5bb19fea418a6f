"""The exception hierarchy built from the server's error bodies."""

from __future__ import annotations

import json

import pytest
from fakes import error_json

from microsandbox import (
    BadRequestError,
    ConflictError,
    ExecTimeoutError,
    ForbiddenError,
    InvalidError,
    MicrosandboxError,
    NoSpaceError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UpstreamError,
)
from microsandbox._errors import error_from_response

TABLE = [
    ("bad_request", 400, BadRequestError),
    ("unauthorized", 401, UnauthorizedError),
    ("forbidden", 403, ForbiddenError),
    ("not_found", 404, NotFoundError),
    ("conflict", 409, ConflictError),
    ("payload_too_large", 413, PayloadTooLargeError),
    ("invalid", 422, InvalidError),
    ("timeout", 504, ExecTimeoutError),
    ("no_space", 507, NoSpaceError),
    ("upstream", 502, UpstreamError),
]


@pytest.mark.parametrize("kind,status,cls", TABLE)
def test_each_kind_has_its_class(kind: str, status: int, cls: type) -> None:
    error = error_from_response(status, json.dumps(error_json(kind, "what happened")).encode())
    assert type(error) is cls
    assert isinstance(error, MicrosandboxError)
    assert (error.kind, error.status, error.message) == (kind, status, "what happened")
    assert str(error) == f"what happened ({kind}, HTTP {status})"


@pytest.mark.parametrize("kind,status,cls", TABLE)
def test_a_body_without_the_error_shape_is_classed_by_status(kind: str, status: int, cls: type) -> None:
    error = error_from_response(status, b"<html>proxy says no</html>", "Reason")
    assert type(error) is cls
    assert error.kind == kind and error.message == "<html>proxy says no</html>"


def test_unknown_kinds_and_statuses_are_the_base_class() -> None:
    error = error_from_response(500, json.dumps(error_json("internal", "boom")).encode())
    assert type(error) is MicrosandboxError and error.kind == "internal" and error.status == 500
    error = error_from_response(418, b"", "I'm a teapot")
    assert type(error) is MicrosandboxError and error.message == "I'm a teapot"
    error = error_from_response(409, json.dumps({"error": "flat"}).encode())
    assert type(error) is ConflictError


def test_timeout_error_does_not_shadow_the_builtin() -> None:
    assert not issubclass(ExecTimeoutError, TimeoutError)
