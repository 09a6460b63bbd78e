"""Is a statement routable to one Citus shard group? The rule the service keeps (docs/scaling.md).

With the data tables distributed by `account_id` (and `accounts` by its `id`, co-located), a
statement runs on one shard group when every distributed table it reads or writes is pinned to
one account: its distribution column equals a parameter or a constant, directly or through a
chain of equalities (`e.account_id = c.account_id AND c.account_id = $1`), in its own query
level or in an enclosing one (correlated subqueries). A CTE or subquery whose own tables are
all pinned is pinned too. Reference and local tables (no `account_id`) never need pinning.

This is a conservative syntactic check on PostgreSQL's own parse tree (pglast): what it accepts
Citus's router planner accepts; it may reject a statement Citus could still route, and such a
statement then needs a reason in the allow-list of the test that runs this.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pglast import ast, parse_sql
from pglast.enums import SetOperation

# A term of an equality: a column of a table in some query level, or the anchor (one value).
_ANCHOR = ("anchor",)
Term = tuple[str, ...]


@dataclass
class _Level:
    """One query level: its FROM items, what is pinned there, and the level around it."""

    distribution: Mapping[str, str]
    parent: _Level | None = None
    ctes: set[str] = field(default_factory=set)
    # alias -> table name, for every table of this level (distributed or not).
    tables: dict[str, str] = field(default_factory=dict)
    # aliases of CTEs and subqueries whose rows are all of one account.
    pinned_sources: set[str] = field(default_factory=set)
    pinned: set[str] = field(default_factory=set)

    def known_ctes(self) -> set[str]:
        outer = self.parent.known_ctes() if self.parent else set()
        return self.ctes | outer

    def distributed(self) -> dict[str, str]:
        return {a: t for a, t in self.tables.items() if t in self.distribution}

    def term(self, column: ast.ColumnRef) -> Term | None:
        """The alias owning a distribution column reference, here or in an enclosing level."""
        names = [f.sval for f in column.fields if isinstance(f, ast.String)]
        if not names:
            return None
        name, alias = names[-1], (names[-2] if len(names) > 1 else None)
        level: _Level | None = self
        while level is not None:
            found = level._own_term(alias, name)
            if found is not None:
                return found
            level = level.parent
        return None

    def _own_term(self, alias: str | None, name: str) -> Term | None:
        if alias is None:
            owners = [a for a, t in self.distributed().items() if self.distribution[t] == name]
            if len(owners) == 1:
                return self._pin_term(owners[0])
            if not owners and len(self.pinned_sources) == 1 and name == "account_id":
                return _ANCHOR
            return None
        if alias in self.pinned_sources and name == "account_id":
            return _ANCHOR
        table = self.tables.get(alias)
        if table is not None and self.distribution.get(table) == name:
            return self._pin_term(alias)
        return None

    def _pin_term(self, alias: str) -> Term:
        # A column of an enclosing level already pinned is as good as the anchor.
        return _ANCHOR if alias in self.pinned else ("col", str(id(self)), alias)


def unroutable(sql: str, distribution: Mapping[str, str]) -> list[str]:
    """The distributed tables of `sql` not pinned to one account (empty: routable)."""
    problems: list[str] = []
    for raw in parse_sql(sql):
        problems.extend(_statement(raw.stmt, _Level(distribution)))
    return problems


def _statement(node: ast.Node, level: _Level) -> list[str]:
    if isinstance(node, ast.SelectStmt):
        return _select(node, level)
    if isinstance(node, ast.InsertStmt):
        return _insert(node, level)
    if isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
        return _modify(node, level)
    if isinstance(node, ast.ExplainStmt | ast.DeclareCursorStmt):
        return _statement(node.query, level)
    return []  # utility statements (DDL, SET, COPY, transaction control) are not routed


def _select(node: ast.SelectStmt, parent: _Level) -> list[str]:
    if node.op is not None and node.op != SetOperation.SETOP_NONE:
        return _select(node.larg, parent) + _select(node.rarg, parent)
    level = _Level(parent.distribution, parent)
    problems = _with(node.withClause, level)
    for item in node.fromClause or ():
        problems += _from_item(item, level)
    return problems + _settle(level, [node.whereClause, node.havingClause], node)


def _insert(node: ast.InsertStmt, parent: _Level) -> list[str]:
    level = _Level(parent.distribution, parent)
    problems = _with(node.withClause, level)
    table = node.relation.relname
    column = parent.distribution.get(table)
    # An account's own id is generated on insert (gen_random_uuid(), which Citus evaluates on
    # the coordinator before routing the row); every other row names its account.
    if column == "account_id":
        named = {target.name for target in node.cols or ()}
        if column not in named:
            problems.append(f"INSERT INTO {table} does not name its {column}")
    if node.selectStmt is not None:
        problems += _statement(node.selectStmt, level)
    return problems


def _modify(node: ast.UpdateStmt | ast.DeleteStmt, parent: _Level) -> list[str]:
    level = _Level(parent.distribution, parent)
    problems = _with(node.withClause, level)
    problems += _from_item(node.relation, level)
    extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
    for item in extra or ():
        problems += _from_item(item, level)
    return problems + _settle(level, [node.whereClause], node)


def _with(clause: ast.WithClause | None, level: _Level) -> list[str]:
    problems: list[str] = []
    for cte in clause.ctes if clause else ():
        inner = _statement(cte.ctequery, level)
        problems += inner
        level.ctes.add(cte.ctename)
        if not inner:
            level.pinned_sources.add(cte.ctename)
    return problems


def _from_item(item: ast.Node, level: _Level) -> list[str]:
    if isinstance(item, ast.RangeVar):
        alias = item.alias.aliasname if item.alias else item.relname
        if item.relname in level.known_ctes():
            if item.relname in _pinned_ctes(level):
                level.pinned_sources.add(alias)
        else:
            level.tables[alias] = item.relname
        return []
    if isinstance(item, ast.JoinExpr):
        return _from_item(item.larg, level) + _from_item(item.rarg, level)
    if isinstance(item, ast.RangeSubselect):
        inner = _statement(item.subquery, level)
        if not inner and item.alias:
            level.pinned_sources.add(item.alias.aliasname)
        return inner
    return []  # functions (unnest, generate_series) read no table


def _pinned_ctes(level: _Level) -> set[str]:
    found: set[str] = set()
    current: _Level | None = level
    while current is not None:
        found |= current.pinned_sources & current.ctes
        current = current.parent
    return found


def _settle(level: _Level, conditions: list[ast.Node | None], node: ast.Node) -> list[str]:
    """Pin this level's tables from its equalities, then check the query levels inside it."""
    equalities = [eq for c in conditions + _join_quals(node) for eq in _conjuncts(c)]
    groups = _UnionFind()
    for left, right in equalities:
        a, b = _term(left, level), _term(right, level)
        if a is not None and b is not None:
            groups.join(a, b)
    for alias in level.distributed():
        if groups.same(("col", str(id(level)), alias), _ANCHOR):
            level.pinned.add(alias)
    problems = [
        f"{table} (as {alias}) is not pinned to one account"
        for alias, table in level.distributed().items()
        if alias not in level.pinned
    ]
    for inner in _inner_selects(node):
        problems += _select(inner, level)
    return problems


def _join_quals(node: ast.Node) -> list[ast.Node | None]:
    items = list(getattr(node, "fromClause", None) or ())
    quals: list[ast.Node | None] = []
    while items:
        item = items.pop()
        if isinstance(item, ast.JoinExpr):
            quals.append(item.quals)
            items += [item.larg, item.rarg]
    return quals


def _conjuncts(node: ast.Node | None) -> Iterator[tuple[ast.Node, ast.Node]]:
    if isinstance(node, ast.BoolExpr) and node.boolop == 0:  # AND
        for arg in node.args:
            yield from _conjuncts(arg)
    elif isinstance(node, ast.A_Expr) and node.kind == 0 and _op(node) == "=":
        yield node.lexpr, node.rexpr


def _op(node: ast.A_Expr) -> str:
    return "".join(n.sval for n in node.name if isinstance(n, ast.String))


def _term(node: ast.Node, level: _Level) -> Term | None:
    if isinstance(node, ast.TypeCast):
        return _term(node.arg, level)
    if isinstance(node, ast.ParamRef | ast.A_Const):
        return _ANCHOR
    if isinstance(node, ast.ColumnRef):
        return level.term(node)
    return None


def _inner_selects(node: ast.Node) -> Iterator[ast.SelectStmt]:
    """The query levels nested in `node`'s expressions (sublinks), not FROM items or CTEs,
    which are checked where they are read."""
    skip = {"fromClause", "usingClause", "withClause", "relation", "larg", "rarg"}
    stack: list[object] = [getattr(node, name) for name in node if name not in skip]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.SelectStmt):
            yield item
        elif isinstance(item, ast.Node):
            stack.extend(getattr(item, name) for name in item)
        elif isinstance(item, list | tuple):
            stack.extend(item)


class _UnionFind:
    def __init__(self) -> None:
        self._parent: dict[Term, Term] = {}

    def _root(self, term: Term) -> Term:
        self._parent.setdefault(term, term)
        while self._parent[term] != term:
            term = self._parent[term]
        return term

    def join(self, a: Term, b: Term) -> None:
        self._parent[self._root(a)] = self._root(b)

    def same(self, a: Term, b: Term) -> bool:
        return self._root(a) == self._root(b)
