"""Schemathesis, run against the OpenAPI schema the staff app serves, on a real server: no
generated request (valid or not, with a token that reads one organisation) is a server error,
and responses match the schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import hypothesis
import pytest
import schemathesis

from feedback.db import Connection
from feedback.publish.accounts import create_user
from feedback.publish.api import TOKEN_PREFIX, hash_api_token
from tests import factories
from tests.browser import live_site
from tests.publish.conftest import PASSWORD, add_release

pytestmark = pytest.mark.slow
TOKEN = TOKEN_PREFIX + "fuzzing-token-0123456789abcdefghijklmnop"


@dataclass
class Api:
    base_url: str


async def seed(conn: Connection) -> None:
    t = await factories.tenant(conn)
    await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
    await add_release(conn, t, "2026-Q3")
    await add_release(conn, t, "2026-Q3", breakdown="gender")
    user_id = await create_user(
        conn,
        organisation_id=t.organisation_id,
        email="bi@org.example",
        role="viewer",
        programs=[t.program_id],
        password=PASSWORD,
    )
    await conn.execute(
        "INSERT INTO api_tokens (organisation_id, user_id, name, token_hash) "
        "VALUES ($1, $2, 'fuzz', $3)",
        t.organisation_id,
        user_id,
        hash_api_token(TOKEN),
    )


@pytest.fixture(scope="module")
def api(
    admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    with live_site(admin_url, template_database, tmp_path_factory.mktemp("server"), seed) as (
        server,
        _,
        _,
    ):
        yield Api(server.base_url)


def test_no_generated_request_is_a_server_error(api: Api) -> None:
    """Each operation of the served schema, driven by Hypothesis through schemathesis's own
    strategies (its pytest plugin does not load under this pytest)."""
    schema = schemathesis.openapi.from_url(api.base_url + "/staff/api/openapi.json")
    assert schema.raw_schema["servers"] == [{"url": "/staff"}]  # the paths' prefix, served
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 3
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answered_by_api: dict[str, bool] = {}
    for operation in operations:

        @hypothesis.settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            database=None,
        )
        @hypothesis.given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            response = case.call_and_validate(headers=headers)  # the schema's own server
            if "application/json" in str(response.headers.get("content-type")):
                answered_by_api[case.operation.label] = True

        fuzz()
    # The requests reached the operations (the schema's server is right), not only the router.
    assert len(answered_by_api) == len(operations), answered_by_api

    # The real releases (which random ids never find) match the schema, field by field.
    by_path = {operation.path: operation for operation in operations}
    listed = httpx.get(
        f"{api.base_url}/staff/api/v1/programs/shelter/releases", headers=headers, timeout=30
    )
    by_path["/api/v1/programs/{program}/releases"].validate_response(listed)
    for summary in listed.json():
        one = httpx.get(
            f"{api.base_url}/staff/api/v1/programs/shelter/releases/{summary['id']}",
            headers=headers,
            timeout=30,
        )
        by_path["/api/v1/programs/{program}/releases/{release}"].validate_response(one)
        assert one.json()["granularity"] == "quarter"
    assert len(listed.json()) == 2
