"""Markdown of a bench.plans run: summary tables, then each shape's SQL and plans."""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.plans import Generic, ShapeResult

_INDEX_SCAN = re.compile(r"(?:Index Only Scan|Index Scan)(?: Backward)? using (\S+)")
_BITMAP_SCAN = re.compile(r"Bitmap Index Scan on (\S+)")
_SEQ_SCAN = re.compile(r"Seq Scan on (\S+)")


def access_paths(plan: str) -> tuple[list[str], list[str]]:
    """(indexes used, tables read by a sequential scan) in a text plan, each once."""
    indexes = _INDEX_SCAN.findall(plan) + _BITMAP_SCAN.findall(plan)
    return sorted(set(indexes)), sorted(set(_SEQ_SCAN.findall(plan)))


def _paths_cell(plan: str) -> str:
    indexes, seq = access_paths(plan)
    cell = ", ".join(f"`{i}`" for i in indexes) or "none"
    return cell + (f"; seq scan: {', '.join(seq)}" if seq else "")


_LONG_ARRAY = re.compile(r"'\{([^}']{200,})\}'")


def _shorten_arrays(plan: str) -> str:
    """Plans of custom plans inline the candidate ids: show how many, not all of them."""
    return _LONG_ARRAY.sub(lambda m: f"'{{<{m[1].count(',') + 1} values>}}'", plan)


def _generic_ms(generic: Generic | None) -> str:
    if generic is None:
        return "-"
    return "cancelled > 60 s" if generic.ms is None else f"{generic.ms:,.1f}"


def _shown_param(value: Any) -> Any:
    if isinstance(value, list) and len(value) > 6:
        return [*(str(v) for v in value[:3]), f"... {len(value)} values"]
    if isinstance(value, list):
        return [v if isinstance(v, int) else str(v) for v in value]
    return value if isinstance(value, int) else str(value)


def _sql_block(sql: str, params: tuple[Any, ...]) -> str:
    shown = json.dumps([_shown_param(p) for p in params])
    return f"```sql\n-- params: {shown}\n{sql};\n```"


def _runs(samples: list[float]) -> str:
    return ", ".join(f"{x:,.0f}" for x in samples)


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def header(spec: dict[str, int], args: argparse.Namespace, server: str) -> str:
    return (
        f"Data: {spec['contacts']:,} contacts and {spec['events']:,} events in the measured "
        f"account (plus {spec['small_contacts']:,} / {spec['small_events']:,} in a second "
        f"account); PostgreSQL {server}; `plan_cache_mode = {args.plan_cache_mode}`; "
        f"one warm-up then {args.runs} timed runs per side, interleaved; medians in ms."
    )


def count_table(results: list[ShapeResult]) -> str:
    lines = [
        "| shape | rows matched | compiled ms | best hand-written ms (variant) | ratio "
        "| fastest runs: compiled / hand-written ms (ratio) | generic plan ms "
        "| compiled plan: indexes used |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        query, side = r.best_hand
        generic = _generic_ms(r.generic)
        lines.append(
            f"| ({r.shape.key}) {r.shape.title} | {r.matched:,} | {r.compiled.median:,.1f} "
            f"| {side.median:,.1f} ({query.label}) | {r.ratio:.2f} "
            f"| {r.compiled.best:,.0f} / {side.best:,.0f} ({r.compiled.best / side.best:.2f}) "
            f"| {generic} | {_paths_cell(r.compiled.plan)} |"
        )
    return "\n".join(lines)


def ids_table(results: list[ShapeResult]) -> str:
    lines = [
        "| shape | rows | compiled ms | hand-written ms | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = r.compiled_ids.median / r.hand_ids.median
        lines.append(
            f"| ({r.shape.key}) | {r.matched:,} | {r.compiled_ids.median:,.1f} "
            f"| {r.hand_ids.median:,.1f} ({r.hand_ids.label}) | {ratio:.2f} |"
        )
    return "\n".join(lines)


def among_table(results: list[ShapeResult]) -> str:
    sizes = [a.size for a in results[0].among] if results else []
    head = " | ".join(f"{n} candidates: ms (matched)" for n in sizes)
    largest = sizes[-1] if sizes else 0
    lines = [
        f"| shape | {head} | {largest}, generic plan: ms "
        f"| plan ({largest} candidates): indexes used |",
        "|---|" + "---:|" * (len(sizes) + 1) + "---|",
    ]
    for r in results:
        cells = " | ".join(f"{a.side.median:,.2f} ({a.matched})" for a in r.among)
        lines.append(
            f"| ({r.shape.key}) | {cells} | {_generic_ms(r.among[-1].generic)} "
            f"| {_paths_cell(r.among[-1].side.plan)} |"
        )
    return "\n".join(lines)


def _plan_block(plan: str) -> str:
    return f"```\n{_shorten_arrays(plan)}\n```"


def shape_details(r: ShapeResult) -> str:
    rules = json.dumps(r.shape.rules, indent=1)
    best_query, best_side = r.best_hand
    variants = "\n".join(
        f"- `{q.label}`: {s.median:,.1f} ms (runs: {_runs(s.samples)})"
        + ("" if q.exact else f" (not exact: {q.note})")
        + (f"; {q.note}" if q.exact and q.note else "")
        for q, s in r.hand
    )
    parts = [
        f"### ({r.shape.key}) {r.shape.title}",
        f"{r.matched:,} contacts; compiled {r.compiled.median:,.1f} ms "
        f"(runs: {_runs(r.compiled.samples)}). Hand-written:\n\n" + variants,
        _details("rules_json", f"```json\n{rules}\n```"),
        _details("compiled SQL (count form)", _sql_block(r.compiled.sql, r.compiled.params)),
        _details(
            f"best hand-written SQL ({best_query.label})",
            _sql_block(best_query.ids_sql, best_query.params),
        ),
        _details("EXPLAIN (ANALYZE, BUFFERS): compiled count", _plan_block(r.compiled.plan)),
        _details(
            f"EXPLAIN (ANALYZE, BUFFERS): hand-written count ({best_query.label})",
            _plan_block(best_side.plan),
        ),
        _details(
            f"EXPLAIN (ANALYZE, BUFFERS): matching_among, {r.among[-1].size} candidates",
            _plan_block(r.among[-1].side.plan),
        ),
    ]
    parts.extend(generic_details(r))
    return "\n\n".join(parts)


def generic_details(r: ShapeResult) -> list[str]:
    shown = [
        ("compiled count", r.generic),
        (f"matching_among, {r.among[-1].size}", r.among[-1].generic),
    ]
    return [
        _details(f"EXPLAIN (ANALYZE, BUFFERS), generic plan: {what}", _plan_block(g.plan))
        for what, g in shown
        if g is not None
    ]


def render(
    results: list[ShapeResult], spec: dict[str, int], args: argparse.Namespace, server: str
) -> str:
    sections = [
        header(spec, args, server),
        "#### Count form\n\n" + count_table(results),
        "#### Member-ids form (rows fetched by the client)\n\n" + ids_table(results),
        "#### matching_among (incremental updates)\n\n" + among_table(results),
        "#### Per shape: SQL and plans",
        *(shape_details(r) for r in results),
    ]
    return "\n\n".join(sections) + "\n"
