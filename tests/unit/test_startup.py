"""Processes start without typeguard's instrumentation of Feast's classes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from collectwise.startup import _not_instrumented

pytestmark = pytest.mark.unit

# Names an instrumented method's code refers to (typeguard's argument check).
PROBE = (
    "import feast\n"
    "print('check_argument_types_internal' in feast.FeatureView.__init__.__code__.co_names)\n"
)


def _instrumented(prefix: str) -> bool:
    command = [sys.executable, "-c", prefix + PROBE]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1] == "True"


def test_feast_loads_without_instrumentation_after_prepare() -> None:
    # The baseline first: were Feast to drop typeguard, this test would say so.
    assert _instrumented("")
    assert not _instrumented("from collectwise import startup\nstartup.prepare()\n")


def test_prepare_after_feast_changes_nothing() -> None:
    prefix = "import feast\nfrom collectwise import startup\nstartup.prepare()\n"
    assert _instrumented(prefix)


def test_the_decorator_in_its_place_keeps_both_forms() -> None:
    def f() -> int:
        return 1

    assert _not_instrumented(f) is f
    assert _not_instrumented(collection_check_strategy=None)(f) is f
