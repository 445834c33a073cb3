"""The OpenAPI document: valid OpenAPI 3.1, the same in docs/ as in the package, served at
``GET /openapi.json`` without auth, and describing exactly the app's routes (both ways)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from quart import Quart

from revivatech_actors import __version__
from revivatech_actors.supervisor import Activity
from revivatech_actors.web.app import create_app
from revivatech_actors.web.openapi import OPENAPI_PATH, load_document

from .test_service import make_service

DOCS_COPY = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
#: Methods Quart adds to every route by itself; the document leaves them out.
AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def openapi_path(rule: str) -> str:
    """A werkzeug rule in OpenAPI templating: ``/a/<path:fp>/b`` -> ``/a/{fp}/b``."""
    return _VARIABLE.sub(r"{\1}", rule)


def app_routes(app: Quart) -> tuple[set[tuple[str, str]], set[str]]:
    """(the HTTP operations as (METHOD, path), the WebSocket paths) of ``app``'s route table."""
    operations, websockets = set(), set()
    for rule in app.url_map.iter_rules():
        path = openapi_path(rule.rule)
        if rule.websocket:
            websockets.add(path)
        else:
            operations.update((method, path) for method in rule.methods - AUTOMATIC_METHODS)
    return operations, websockets


def document_routes(document: dict) -> tuple[set[tuple[str, str]], set[str]]:
    """(the HTTP operations, the paths marked ``x-websocket``) the document describes."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }
    websockets = {path for path, item in document["paths"].items() if "x-websocket" in item}
    return operations, websockets


def undescribed(app: Quart, document: dict) -> dict[str, list]:
    """What one side has and the other lacks; empty lists when they agree."""
    served_ops, served_ws = app_routes(app)
    described_ops, described_ws = document_routes(document)
    return {
        "routes without a schema": sorted(served_ops - described_ops),
        "documented operations the app lacks": sorted(described_ops - served_ops),
        "WebSocket routes not documented as x-websocket": sorted(served_ws - described_ws),
        "x-websocket paths the app lacks": sorted(described_ws - served_ws),
    }


@pytest.fixture
def document() -> dict:
    return json.loads(load_document())


@pytest.fixture
def app(tmp_path) -> Quart:
    # faults on: the crash route exists only then, and the document describes it
    service = make_service(f"sqlite:///{tmp_path / 'openapi.db'}", **{"faults.enabled": True})
    return create_app(service.app_parts, Activity())


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["version"] == __version__


def test_docs_holds_the_same_document_as_the_package():
    assert DOCS_COPY.read_bytes() == load_document(), (
        "docs/openapi.json differs from revivatech_actors/web/openapi.json "
        "(the one the service serves): "
        "cp revivatech_actors/web/openapi.json docs/openapi.json"
    )


def test_every_route_has_a_schema_and_every_schema_a_route(app, document):
    assert undescribed(app, document) == {
        "routes without a schema": [],
        "documented operations the app lacks": [],
        "WebSocket routes not documented as x-websocket": [],
        "x-websocket paths the app lacks": [],
    }


def test_a_route_without_a_schema_is_found(app, document):
    @app.delete("/api/analytics/things/<int:thing_id>")
    async def delete_thing(thing_id: int):
        return ""

    @app.websocket("/api/analytics/other-ws")
    async def other_ws():
        return None

    found = undescribed(app, document)
    assert found["routes without a schema"] == [("DELETE", "/api/analytics/things/{thing_id}")]
    assert found["WebSocket routes not documented as x-websocket"] == ["/api/analytics/other-ws"]


def test_a_schema_without_a_route_is_found(app, document):
    document["paths"]["/api/analytics/gone"] = {
        "get": {"responses": {"200": {"description": "gone"}}}
    }
    document["paths"]["/api/analytics/old-ws"] = {"x-websocket": {}}
    found = undescribed(app, document)
    assert found["documented operations the app lacks"] == [("GET", "/api/analytics/gone")]
    assert found["x-websocket paths the app lacks"] == ["/api/analytics/old-ws"]


def test_every_operation_documents_its_answers_and_security(document):
    admin = [{"bearerAuth": []}, {"tokenCookie": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method.startswith("x-") or method in ("summary", "description"):
                continue
            where = f"{method.upper()} {path}"
            assert "security" in operation, where
            assert operation["operationId"], where
            if operation["security"] == admin:  # an admin route refuses without a credential
                assert {"401", "403"} <= operation["responses"].keys(), where


async def test_openapi_json_is_served_without_auth(app):
    async with app.test_app() as test_app:
        answer = await test_app.test_client().get(OPENAPI_PATH)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        assert await answer.get_data() == load_document()


async def test_the_websocket_path_answers_plain_http_as_documented(app, document):
    assert (
        "websocket_mismatch" in document["paths"]["/api/analytics/ws"]["x-websocket"]["plainHttp"]
    )
    async with app.test_app() as test_app:
        answer = await test_app.test_client().get("/api/analytics/ws")
        assert answer.status_code == 400
        assert (await answer.get_json())["error"] == "websocket_mismatch"
        assert "WebSocket client" in (await answer.get_json())["message"]
