"""Canonical rule tree -> parameterised SQL. Pure: no IO, no clock (`now` is an input).

Read in this order:
- forms.py: the entry points, one per form of a segment's query (count, member ids, which of
  some candidates match);
- plan.py: the planner pass, rewrites that change how PostgreSQL is asked, never what,
  into the intermediate form of nodes.py;
- translate.py: the plan -> SQL, one method per node kind;
- sources.py: the rows a statement starts from (all contacts, or candidates);
- operators.py: the whitelisted identifiers and the operator templates;
- params.py: the one maker of placeholders; every user value is a bind parameter.
"""

from worker.compiler.forms import (
    CompiledAmong,
    compile_count,
    compile_explain,
    compile_matching_among,
    compile_matching_among_each,
    compile_member_ids,
)
from worker.compiler.query import CompiledQuery, SegmentQuery
from worker.compiler.readers import field_reader

__all__ = [
    "CompiledAmong",
    "CompiledQuery",
    "SegmentQuery",
    "compile_count",
    "compile_explain",
    "compile_matching_among",
    "compile_matching_among_each",
    "compile_member_ids",
    "field_reader",
]
