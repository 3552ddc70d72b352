"""Property-based contract tests: schemathesis generates requests from the OpenAPI schema
(valid and invalid) and checks every answer against it; no input may cause a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from serving.main import create_app
from tests.serving.conftest import SCORE_KEY, ScorerWorld, scorer_settings, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_schema(world: ScorerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root: Path = tmp_path_factory.mktemp("contract")
    app = create_app(scorer_settings(root, rate_per_minute=100_000), store=world.store)
    with serve(app):  # runs the lifespan: the generated calls meet a fully started service
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_contract(api_schema: Any, mode: GenerationMode) -> None:
    """Valid requests are accepted (ST202), schema-violating ones rejected (ST201), and every
    status is documented (ST103); all default checks run."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/score", "/v1/score/batch"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to violate in a call without a body or parameters

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers={"X-API-Key": SCORE_KEY})

        check()
