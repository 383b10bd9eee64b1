"""The API against its own OpenAPI schema: generated requests, valid and invalid, never a server error.

Bounded: a fixed number of derandomized examples per operation and mode, so the run is repeatable
and takes seconds. Requests go through Django's real WSGI handler.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def schema(transactional_db):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


def test_the_schema_documents_every_endpoint(schema):
    paths = set(schema.raw_schema["paths"])
    assert paths == {
        "/api/documents",
        "/api/documents/{document_id}",
        "/api/executions/{execution_id}",
        "/api/executions/{execution_id}/history",
        "/api/callbacks/{callback_id}/succeed",
        "/api/callbacks/{callback_id}/fail",
        "/api/callbacks/{callback_id}/heartbeat",
    }
    assert schema.raw_schema["components"]["securitySchemes"]


@pytest.mark.slow
@pytest.mark.timeout(100)
def test_generated_requests_never_cause_a_server_error(schema, issue):
    token = issue().plaintext
    auth = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    calls = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                case.headers = {**(case.headers or {}), **auth}
                response = case.call()
                calls.append(response.status_code)
                case.validate_response(response, checks=CHECKS)

            check()
    assert calls
    assert all(status < 500 for status in calls)
    assert any(status in (200, 202) for status in calls)  # some generated requests were accepted


def test_the_docs_page_loads_nothing_from_outside(client, db):
    import re

    from django.contrib.staticfiles import finders

    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/api/openapi.json" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    assert all(not re.match(r"^(https?:)?//", s) for s in sources), sources
    for asset in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css", "ninja/swagger-ui-init.js"):
        assert f"/static/{asset}" in html
        assert finders.find(asset), asset  # shipped in the django-ninja package, served by our static files
    schema = client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "Durable Django API"


def _bad_bodies():
    """The values no database stores, as raw JSON text (schemathesis itself sends only JSON it
    can encode): non-finite numbers, lone surrogates, NUL, deep nesting."""
    deep = '{"a": ' * 2100 + "1" + "}" * 2100
    yield from ("NaN", "Infinity", "-Infinity", "1e400", '"\\ud800"', '"a\\u0000b"', deep)


@pytest.mark.parametrize(
    "bad", list(_bad_bodies()), ids=["NaN", "Infinity", "-Infinity", "1e400", "surrogate", "NUL", "deep"]
)
def test_values_no_database_stores_are_refused_as_the_schema_says(schema, issue, bad):
    """Each operation that takes a body, with a bad value where its schema allows any JSON or a
    string: the answer is one the schema documents (422), in the error shape, never a 500."""
    auth = {"Authorization": f"Bearer {issue().plaintext}", "Content-Type": "application/json"}
    bodies = {
        ("POST", "/api/documents"): f'{{"title": "t", "text": "t", "metadata": {{"k": {bad}}}}}',
        ("POST", "/api/callbacks/{callback_id}/succeed"): f'{{"result": {bad}}}',
        ("POST", "/api/callbacks/{callback_id}/fail"): f'{{"error": {{"data": {bad}}}}}',
    }
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        body = bodies.get((operation.method.upper(), operation.path))
        if body is None:
            continue
        case = operation.Case(path_parameters={"callback_id": "someCallbackId"}, headers=auth)
        response = case.call(data=body.encode("utf-8", "surrogatepass"))
        assert response.status_code == 422, response.content
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"][0]["type"] in {"non_finite_number", "lone_surrogate", "nul_character", "too_deep"}
        case.validate_response(response, checks=CHECKS)
        checked += 1
    assert checked == 3
