"""Errors a retry cannot heal.

A bad definition, a type with no exact mapping, a missing primary-key column, the dropped-column
guard, an invalid identifier: trying again in five minutes gives the same answer, so operators
fail the task at once (no retries) with the same message. Connection errors, timeouts and 5xx
answers are not PermanentErrors and keep the DAG's retries.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Mixin for errors that only a change of definition, code or data can fix."""


class IdentifierError(ValueError, PermanentError):
    """A table, column or dataset name that is not a plain identifier."""


class SourceDefinitionError(ValueError, PermanentError):
    """The sync definition does not match the source table (missing key/cursor column, dropped column)."""


class SourceDataError(ValueError, PermanentError):
    """A source value does not fit the column's exact type; fixing the data (or the definition) helps."""
