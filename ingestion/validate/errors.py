"""The error that stops a validation run."""

from __future__ import annotations

from collectwise.errors import InvalidInputError


class ValidationFailed(InvalidInputError):  # noqa: N818 (the name the pipeline agreed on)
    """Raw data that cannot be used: the message names the table, the column and the problem."""

    def __init__(self, message: str, table: str | None = None, column: str | None = None):
        super().__init__(message)
        self.table = table
        self.column = column
