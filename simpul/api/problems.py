"""RFC 9457 problem responses: the one place that turns an error into `application/problem+json`.

The status is chosen from the exception's class (its place in the tree of simpul/errors.py), never
from its text: the most specific class listed in PROBLEMS wins.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from simpul.errors import (
    ActorRequired, ArchiveIncomplete, ArchiveUnreadable, ConfigError, InvalidParameter, MessageError, NotFound,
    OperationRefused,
    ReplayOverCap, SimpulError, StoreError, problem_document,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Exception class -> (HTTP status, title). Looked up along the class's MRO, so a subclass not
# listed here answers like its nearest listed ancestor.
PROBLEMS: dict[type[BaseException], tuple[int, str]] = {
    ActorRequired: (400, "Actor required"),
    InvalidParameter: (400, "Invalid parameter"),
    NotFound: (404, "Not found"),
    ReplayOverCap: (409, "Replay over the cap"),
    OperationRefused: (409, "Refused"),
    MessageError: (400, "Unreadable message"),
    ArchiveIncomplete: (503, "Archive incomplete"),
    ArchiveUnreadable: (503, "Archive unreadable"),
    StoreError: (503, "Store unavailable"),
    # A setting the server cannot use (e.g. an archive key that is not configured): not the client's fault.
    ConfigError: (503, "Server configuration"),
    SimpulError: (500, "Internal error"),
}


def problem(status: int, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response."""
    return JSONResponse(problem_document(status, title, detail, **extra), status_code=status,
                        media_type=PROBLEM_MEDIA_TYPE)


def status_for(error: BaseException) -> tuple[int, str]:
    """(status, title) for an exception, from the most specific listed class it derives from."""
    for cls in type(error).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return 500, "Internal error"


def problem_for(error: BaseException) -> JSONResponse:
    status, title = status_for(error)
    extra: dict[str, Any] = {}
    if isinstance(error, ReplayOverCap):
        extra["preview"] = error.preview
    if isinstance(error, ArchiveIncomplete):
        extra["report"] = error.report
    # Our own errors never carry patient data (simpul/errors.py); anything else shows only its class.
    detail = str(error) if isinstance(error, SimpulError) else type(error).__name__
    return problem(status, title, detail, **extra)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error of the app answers as a problem document, never as a traceback or HTML."""

    async def simpul_error(_request: Request, exc: Exception) -> JSONResponse:
        return problem_for(exc)

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return problem(400, "Invalid request", f"{where}: {first.get('msg', '')}")

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        response = problem(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return problem(500, "Internal error", type(exc).__name__)

    app.add_exception_handler(SimpulError, simpul_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
