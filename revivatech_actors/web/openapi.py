"""``GET /openapi.json``: the OpenAPI 3.1 document of every HTTP route, open to anyone.

The document is a file shipped in this package (``openapi.json``, copied as docs/openapi.json);
it is read once, when the app is built, and served as it is.
"""

from __future__ import annotations

import importlib.resources

from quart import Quart, Response

__all__ = ["OPENAPI_PATH", "load_document", "register_openapi_route"]

#: Where the document is served.
OPENAPI_PATH = "/openapi.json"


def load_document() -> bytes:
    """The document's bytes, as shipped in the package."""
    return importlib.resources.files(__package__).joinpath("openapi.json").read_bytes()


def register_openapi_route(app: Quart) -> None:
    document = load_document()

    @app.get(OPENAPI_PATH)
    async def openapi():
        return Response(document, content_type="application/json")
