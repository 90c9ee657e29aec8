"""The HTTP API's ``$default`` route: a request no route takes answers the error envelope, never a bare gateway 404.

A path the API serves with other methods → ``405 method_not_allowed`` with ``Allow``; any other path →
``404 not_found``. The routes are read from ``routes.json`` beside this file, which ``tools/openapi.py`` writes from
template.yaml (its ``--check`` fails when the file is stale). The route is open (no authorizer): it reveals no more
than the published API document.
"""

import json
import re
from pathlib import Path

from billing.errors import MethodNotAllowed, NotFound
from billing.http import Request, api, error_response

_ROUTES = json.loads((Path(__file__).with_name("routes.json")).read_text())
_PATTERNS = [
    (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"), methods)
    for path, methods in _ROUTES.items()
]


def allowed_methods(path: str) -> list[str]:
    """The methods of every route whose path matches ``path`` (empty: no such path)."""
    return sorted({method for pattern, methods in _PATTERNS if pattern.match(path) for method in methods})


@api(authenticated=False)
def lambda_handler(req: Request) -> dict:
    methods = allowed_methods(req.path)
    if not methods:
        return error_response(NotFound(f"no route for {req.path}", {"path": req.path}))
    out = error_response(
        MethodNotAllowed(
            f"{req.method} is not allowed on {req.path}", {"method": req.method, "allowed_methods": methods}
        )
    )
    out["headers"]["Allow"] = ", ".join(methods)
    return out
