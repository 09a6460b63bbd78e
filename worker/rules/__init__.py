"""The rule language: canonical tree, field registry, dialect parsers. Pure: no IO."""

from worker.rules.errors import RuleError, RulesInvalid
from worker.rules.fields import FieldRegistry, FieldSpec, FieldType
from worker.rules.parse import parse_rules, parse_simple_rules, parse_v1_rules, parse_v2_rules
from worker.rules.tree import (
    ActivityCondition,
    Condition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    RuleTree,
)

__all__ = [
    "ActivityCondition",
    "Condition",
    "FieldCondition",
    "FieldRegistry",
    "FieldSpec",
    "FieldType",
    "IspCondition",
    "MembershipCondition",
    "RuleError",
    "RuleTree",
    "RulesInvalid",
    "parse_rules",
    "parse_simple_rules",
    "parse_v1_rules",
    "parse_v2_rules",
]
