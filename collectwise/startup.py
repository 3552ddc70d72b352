"""What a Collectwise process sets before the platform's modules load.

Feast decorates its classes (FeatureView, Entity, Field, FeatureService, ...) with
typeguard's `@typechecked`, which re-parses the source of every method of the class and
compiles an instrumented copy when Feast is imported: about 260 methods, 3 of the 4-5 s
that importing Feast takes on this machine (1.4 s without). Every process that reads
features paid it at start: each `collectwise` command, each scorer worker, the console.
typeguard meant these checks for development (its decorator does nothing under `python -O`,
which would also drop every assert), so our entry points put an identity decorator in its
place before Feast loads. Our own calls into Feast are checked statically (mypy); Feast's
own CLI (`feast apply`) is not ours and keeps its checks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def prepare() -> None:
    """Call first thing in a process, before anything imports Feast; afterwards it is too
    late for the modules already loaded, and this changes nothing."""
    if "feast" in sys.modules:
        return
    import typeguard  # noqa: PLC0415

    typeguard.typechecked = _not_instrumented


def _not_instrumented(target: Any = None, **_options: Any) -> Any:
    # The decorator's two forms: @typechecked and @typechecked(...).
    if target is None:
        return _identity
    return target


def _identity(target: Callable[..., Any]) -> Callable[..., Any]:
    return target


def main() -> None:
    """The `collectwise` command."""
    prepare()
    from collectwise.cli import main as cli_main  # noqa: PLC0415

    cli_main()


def scorer_app() -> Any:
    """uvicorn's app factory for the scorer's workers (each a process of its own)."""
    prepare()
    from serving.main import create_app  # noqa: PLC0415

    return create_app()
