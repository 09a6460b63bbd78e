"""How rules read a contact's fields in SQL (docs/rules.md): one reader per field."""

from __future__ import annotations

from worker.compiler.operators import COLUMNS, CUSTOM_READERS
from worker.compiler.params import Params
from worker.rules.fields import FieldSource, FieldSpec


def field_reader(spec: FieldSpec, params: Params) -> str:
    """The SQL reading a column or custom field of the contact `c` as rules read it (a
    custom value of the wrong type is null; list elements lower-cased): docs/rules.md."""
    column = plain_column(spec)
    if column is not None:
        return column
    if spec.source is FieldSource.CUSTOM:
        key = params.add(spec.name, "text")
        return f"{CUSTOM_READERS[spec.type]}(c.attributes -> {key})"
    if spec.name == "tags":
        return "segments_lower_array(c.tags)"
    return COLUMNS[spec.name]  # derived fields never get here: the planner reads events


def plain_column(spec: FieldSpec) -> str | None:
    """The column of `c` that is the field as rules read it; None for the fields read
    through a function (custom fields, tags)."""
    if spec.source is FieldSource.CUSTOM:
        return None
    return COLUMNS.get(spec.name)
