"""The console script's shell: every Typer app of `collectwise` is made here, so every
command turns a domain error into one line and its exit code, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer.core import TyperGroup

from collectwise.errors import CollectwiseError, backend_down

log = logging.getLogger("collectwise")


class DomainErrorsGroup(TyperGroup):
    """A command group that reports a CollectwiseError raised anywhere below it."""

    # ctx is typer's vendored click Context; typed Any so as not to import a private module.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CollectwiseError as exc:
            # The message names the input and the problem; the class says what kind it is.
            log.error("%s: %s", type(exc).__name__, exc)
            raise typer.Exit(code=exc.exit_code) from exc
        except typer.Exit:
            raise  # a subcommand's group has already reported it
        except Exception as exc:
            # A backend that did not answer is the operator's to fix, not a bug: one line
            # naming it. Anything else is a bug and keeps its traceback.
            down = backend_down(exc)
            if down is None:
                raise
            log.error("%s: %s", type(down).__name__, down)
            raise typer.Exit(code=down.exit_code) from exc


def new_app(**kwargs: Any) -> typer.Typer:
    """A Typer app of the console script (a group that reports domain errors)."""
    return typer.Typer(cls=DomainErrorsGroup, **kwargs)
