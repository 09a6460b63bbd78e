"""The rule language: canonical tree, field registry, one module per dialect (v2, v1, simple:
parse and render) and the dispatch between them (dialects). Pure: no IO."""

from worker.rules.dialects import (
    Dialect,
    UnknownDialect,
    canonical_groups,
    parse_rules,
    simple_rules,
    v1_rules,
    v2_rules,
)
from worker.rules.errors import RuleError, RulesInvalid
from worker.rules.fields import FieldRegistry, FieldSpec, FieldType
from worker.rules.items import shown_item
from worker.rules.simple import parse as parse_simple_rules
from worker.rules.tree import (
    ActivityCondition,
    Condition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    RuleTree,
    SegmentCondition,
)
from worker.rules.v1 import parse as parse_v1_rules
from worker.rules.v2 import parse as parse_v2_rules

__all__ = [
    "ActivityCondition",
    "Condition",
    "Dialect",
    "FieldCondition",
    "FieldRegistry",
    "FieldSpec",
    "FieldType",
    "IspCondition",
    "MembershipCondition",
    "RuleError",
    "RuleTree",
    "RulesInvalid",
    "SegmentCondition",
    "UnknownDialect",
    "canonical_groups",
    "parse_rules",
    "parse_simple_rules",
    "parse_v1_rules",
    "parse_v2_rules",
    "shown_item",
    "simple_rules",
    "v1_rules",
    "v2_rules",
]
