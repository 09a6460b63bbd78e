"""The documentation stays true: the message JSON Schemas and the README's configuration table
are what the code generates, the schemas and the worker's decoder agree on what a message is,
and the producer example really moves a contact between segments."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import jsonschema
import pytest

from tests.examples_support import load_example
from tests.waiting import wait_for
from tests.worker_support import (
    members,
    publish_segment,
    publisher,
    running_worker,
    save_segment,
    seed_contacts,
    segment_row,
    wait_status,
    worker_settings,
)
from worker.messages import BadMessage, ContactChanged, SegmentMessage, _Message, decode
from worker.rules import (
    RulesInvalid,
    RuleTree,
    limits,
    parse_simple_rules,
    parse_v1_rules,
    parse_v2_rules,
)
from worker.rules.fields import BUILTIN_FIELDS, OPERATORS_BY_TYPE, FieldRegistry
from worker.schemas import MESSAGES, render, schemas
from worker.settings import OTHER_VARIABLES, Settings, markdown_table

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schemas"
EXAMPLE = ROOT / "examples" / "produce_contact_changed.py"
README = ROOT / "README.md"
# Variables of the test suite and CI, not of the service (README mentions some of them).
TEST_VARIABLES = {
    "SEGMENTS_TEST_DATABASE_URL",
    "SEGMENTS_TEST_AMQP_URL",
    "SEGMENTS_SCHEMATHESIS_EXAMPLES",
    "SEGMENTS_PROPERTY_EXAMPLES",
    "SEGMENTS_REQUIRE_PROMTOOL",
    "SEGMENTS_REQUIRE_BROWSER",
}

A = "6f1c2d9e-3b4a-4c5d-8e7f-0a1b2c3d4e5f"
B = "0b8e4f6a-1c2d-4e3f-9a5b-6c7d8e9f0a1b"
CHANGED = {"schema": 1, "account_id": A, "contact_ids": [B], "changed_at": "2024-05-01T10:00:00Z"}
SEGMENT = {"schema": 1, "account_id": A, "segment_id": B, "generation": 1}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body.update(changes)
    return body


def _without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


VALID: list[tuple[type[_Message], Any]] = [
    (ContactChanged, CHANGED),
    (ContactChanged, _with(CHANGED, contact_ids=[A] * 1000)),
    (ContactChanged, _with(CHANGED, contact_ids=[A, B, A])),
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01T12:00:00.123456+02:00")),
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01T10:00:00-05:30")),
    (ContactChanged, _with(CHANGED, account_id=A.upper())),
    (SegmentMessage, SEGMENT),
    (SegmentMessage, _with(SEGMENT, generation=2**31)),
]

INVALID: list[tuple[type[_Message], Any]] = [
    (ContactChanged, _with(CHANGED, schema=2)),
    (ContactChanged, _with(CHANGED, schema="1")),
    (ContactChanged, _without(CHANGED, "schema")),
    (ContactChanged, _without(CHANGED, "changed_at")),
    (ContactChanged, _with(CHANGED, contact_ids=[])),
    (ContactChanged, _with(CHANGED, contact_ids=[A] * 1001)),
    (ContactChanged, _with(CHANGED, contact_ids=["not-a-uuid"])),
    (ContactChanged, _with(CHANGED, contact_ids=A)),
    (ContactChanged, _with(CHANGED, account_id="acme")),
    (ContactChanged, _with(CHANGED, account_id=None)),
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01T10:00:00")),  # no offset
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01")),
    (ContactChanged, _with(CHANGED, changed_at="yesterday")),
    (ContactChanged, _with(CHANGED, extra="typo")),
    (ContactChanged, _with(CHANGED, contactIds=[B])),
    (ContactChanged, SEGMENT),
    (ContactChanged, [CHANGED]),
    (ContactChanged, "contact.changed"),
    (SegmentMessage, _with(SEGMENT, generation=0)),
    (SegmentMessage, _with(SEGMENT, generation=-1)),
    (SegmentMessage, _with(SEGMENT, generation=1.5)),
    (SegmentMessage, _with(SEGMENT, generation=None)),
    (SegmentMessage, _without(SEGMENT, "segment_id")),
    (SegmentMessage, _with(SEGMENT, segment_id="42")),
    (SegmentMessage, _with(SEGMENT, schema=0)),
    (SegmentMessage, _with(SEGMENT, contact_ids=[A])),
    (SegmentMessage, CHANGED),
]


def _validator(model: type[_Message]) -> jsonschema.Draft202012Validator:
    (doc,) = [d for d in MESSAGES if d.model is model]
    schema = json.loads((SCHEMA_DIR / doc.file_name).read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _decodes(model: type[_Message], body: Any) -> bool:
    try:
        decode(model, json.dumps(body).encode())
    except BadMessage:
        return False
    return True


# --- JSON Schemas ------------------------------------------------------------------------------


def test_committed_schemas_are_what_the_script_generates() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(schemas())
    for name, schema in schemas().items():
        assert (SCHEMA_DIR / name).read_text() == render(schema), (
            f"docs/schemas/{name} is stale: run `python -m worker.schemas`"
        )


def test_the_schema_script_checks_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.schemas", "--check"], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def test_schemas_are_valid_draft_2020_12_with_formats_checked() -> None:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    # Without these checkers jsonschema would silently accept any string for the formats.
    assert {"uuid", "date-time"} <= set(checker.checkers)
    for schema in schemas().values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        assert schema["properties"]["schema"]["const"] == 1
        assert all(spec.get("description") for spec in schema["properties"].values())


def test_contact_changed_schema_states_the_limits() -> None:
    properties = schemas()["contact-changed.schema.json"]["properties"]
    assert properties["contact_ids"]["minItems"] == 1
    assert properties["contact_ids"]["maxItems"] == 1000
    assert properties["contact_ids"]["items"] == {"type": "string", "format": "uuid"}
    assert properties["changed_at"]["format"] == "date-time"


@pytest.mark.parametrize("doc", MESSAGES, ids=lambda d: d.file_name)
def test_schema_examples_are_valid_messages(doc: Any) -> None:
    validator = _validator(doc.model)
    for example in schemas()[doc.file_name]["examples"]:
        validator.validate(example)
        assert _decodes(doc.model, example)


@pytest.mark.parametrize(("model", "body"), VALID)
def test_valid_bodies_pass_the_schema_and_the_decoder(model: type[_Message], body: Any) -> None:
    errors = [e.message for e in _validator(model).iter_errors(body)]
    assert errors == []
    assert _decodes(model, body)


@pytest.mark.parametrize(("model", "body"), INVALID)
def test_invalid_bodies_fail_the_schema_and_the_decoder(model: type[_Message], body: Any) -> None:
    assert not _validator(model).is_valid(body)
    assert not _decodes(model, body)


# --- Configuration table -------------------------------------------------------------------


def test_readme_has_the_generated_configuration_table() -> None:
    assert markdown_table() in README.read_text(), (
        "README's configuration table is stale: paste `python -m worker.settings --markdown`"
    )


def test_the_table_names_every_setting() -> None:
    table = markdown_table()
    for name in Settings.model_fields:
        assert f"| `SEGMENTS_{name.upper()}` |" in table
    for variable in OTHER_VARIABLES:
        assert f"| `{variable}` |" in table


def test_settings_script_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.settings", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == markdown_table()


def test_readme_mentions_no_unknown_variable() -> None:
    known = {f"SEGMENTS_{name.upper()}" for name in Settings.model_fields}
    known |= set(OTHER_VARIABLES) | TEST_VARIABLES
    mentioned = set(re.findall(r"\bSEGMENTS_[A-Z0-9_]*[A-Z0-9]\b", README.read_text()))
    assert mentioned - known == set()


# --- Producer example ----------------------------------------------------------------------


def _example_module() -> ModuleType:
    return load_example(EXAMPLE.name)


def test_example_bodies_match_the_schema_in_chunks_of_1000() -> None:
    account = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(2500)]
    bodies = _example_module().bodies(account, ids, datetime.now(UTC))
    assert [len(json.loads(b)["contact_ids"]) for b in bodies] == [1000, 1000, 500]
    validator = _validator(ContactChanged)
    seen = []
    for body in bodies:
        validator.validate(json.loads(body))
        seen += decode(ContactChanged, body).contact_ids
    assert seen == ids


async def _run_example(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


IN_DE = {
    "any": [{"all": [{"kind": "field", "field": "country", "operator": "equals", "value": "DE"}]}]
}


async def test_producer_example_moves_contacts_between_segments(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    database_url: str,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    leaving, joining, staying = await seed_contacts(
        conn, account_id, [{"country": "DE"}, {"country": "FR"}, {"country": "DE"}]
    )
    segment = await save_segment(conn, account_id, IN_DE)
    async with running_worker(worker_settings(database_url, amqp_url)):
        async with publisher(amqp_url) as exchange:
            await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "DONE")
        assert await members(conn, segment["id"]) == {leaving, staying}

        await conn.execute("UPDATE contacts SET country = 'FR' WHERE id = $1", leaving)
        await conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", joining)
        # Run from elsewhere: the example needs aio-pika only, nothing of this repository.
        code, out, err = await _run_example(
            "--amqp-url", amqp_url, "--account", str(account_id), str(leaving), str(joining),
            cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        report = json.loads(out)
        assert report["published"] == 1 and len(report["message_ids"]) == 1

        async def moved() -> bool:
            return await members(conn, segment["id"]) == {joining, staying}

        await wait_for(moved)
        row = await segment_row(conn, segment["id"])
        assert (row["status"], row["total_count"]) == ("DONE", 2)


async def test_producer_example_fails_clearly_without_a_broker(tmp_path: Path) -> None:
    code, out, err = await _run_example(
        "--amqp-url", "amqp://guest:guest@127.0.0.1:1/", "--account", str(uuid.uuid4()),
        str(uuid.uuid4()), cwd=tmp_path,
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "could not publish contact.changed" in err


async def test_producer_example_refuses_ids_that_are_not_uuids(tmp_path: Path) -> None:
    code, _, err = await _run_example("--account", str(uuid.uuid4()), "42", cwd=tmp_path)
    assert code == 2 and "invalid UUID value" in err


# --- Links ---------------------------------------------------------------------------------

# Not the repository's own files: virtualenvs, git, caches and build output, and the benchmark
# scripts' git-ignored reports.
_NOT_OURS = {
    ".venv", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
    "__pycache__", "build", "node_modules",
}  # fmt: skip
_NOT_OURS_UNDER = (ROOT / "bench" / "out",)
# Spelt in parts so that this file does not trip its own check.
OUTSIDE_REFERENCES = ("../" + "shared", "DESIGN" + ".md")
# The product brief's numbered source documents (seed + number), outside the repository too.
_SEED = re.compile(r"\bseeds?[ /]+0[0-9]{2}\b", re.IGNORECASE)
# Applied migrations are never edited (every database that ran one keeps its checksum, and
# `segments migrate` warns when it changes), so these keep the reference they were written with.
FROZEN = {
    ROOT / "sql" / name
    for name in ("001_core.sql", "002_value_functions.sql", "007_segment_numbers_per_account.sql")
}
_TEXT_SUFFIXES = {".md", ".py", ".toml", ".sql", ".yml", ".yaml", ".json", ".sh", ".cfg", ".ini"}

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
_HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def _repo_files(root: Path, wanted: Callable[[Path], bool]) -> list[Path]:
    def ours(path: Path) -> bool:
        folders = path.relative_to(root).parts[:-1]
        return not (
            _NOT_OURS & set(folders)
            or any(f.endswith(".egg-info") for f in folders)
            or any(path.is_relative_to(d) for d in _NOT_OURS_UNDER)
        )

    return sorted(p for p in root.rglob("*") if p.is_file() and wanted(p) and ours(p))


def _prose(markdown: str) -> str:
    """The text with fenced code blocks and code spans blanked: links there are not links."""
    return _CODE_SPAN.sub(" ", _FENCE.sub("", markdown))


def links(markdown: str) -> list[str]:
    """Link and image targets in document order (inline, reference definitions, HTML)."""
    text = _prose(markdown)
    found = [
        (m.start(), m.group(1))
        for pattern in (_INLINE_LINK, _REFERENCE_LINK, _HTML_LINK)
        for m in pattern.finditer(text)
    ]
    return [target for _, target in sorted(found) if target]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower-cased, without punctuation, spaces as -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a document; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in links(document.read_text()):
        if _URL.match(target):
            continue  # an absolute URL (https:, mailto:), not a file
        path_part, _, fragment = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif (
            fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text())
        ):
            problems.append(f"{target}: no heading with the anchor #{fragment}")
    return problems


MARKDOWN = _repo_files(ROOT, lambda p: p.suffix == ".md")


def test_the_documents_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    assert {"README.md", "docs/rules.md", "docs/benchmarks.md"} <= names
    assert not any(name.startswith((".venv/", ".git/")) for name in names)


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve_inside_the_repository(document: Path) -> None:
    assert broken_links(document) == []


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "pic.png").write_bytes(b"")
    other = "# Other\n## Part `two`: the (end)\n## Part two\n## Part two\n"
    (root / "docs" / "other.md").write_text(other)
    (tmp_path / "outside.md").write_text("# Outside\n")
    document = root / "docs" / "doc.md"
    document.write_text(
        "## B\n[ok](#b) [gone](#nowhere) [file](missing.md) [up](../../outside.md)\n"
        "[part](other.md#part-two-the-end) [again](other.md#part-two-1) [no](other.md#three)\n"
        '[web](https://example.com/x) `[code](in-code.md)` ![img](pic.png "a title")\n'
        "```\n[fenced](in-fence.md)\n```\n[ref]: ../../outside.md\n"
    )
    assert broken_links(document, root) == [
        "#nowhere: no heading with the anchor #nowhere",
        "missing.md: no such file",
        "../../outside.md: outside the repository",
        "other.md#three: no heading with the anchor #three",
        "../../outside.md: outside the repository",
    ]


def references_outside(path: Path) -> list[str]:
    """Lines of a file that send the reader outside the repository."""
    return [
        f"{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if any(reference in line for reference in OUTSIDE_REFERENCES) or _SEED.search(line)
    ]


def test_the_reference_check_finds_references_outside(tmp_path: Path) -> None:
    text = "ok\nsee ../" + "shared/x\nDESIGN" + ".md 4.3\n(seed" + " 003)\n"
    text += "seeds/" + "001\nseeded 2\n"
    (tmp_path / "x.py").write_text(text)
    assert [line.split(":")[0] for line in references_outside(tmp_path / "x.py")] == [
        "2", "3", "4", "5",
    ]  # fmt: skip


def test_nothing_refers_outside_the_repository() -> None:
    files = _repo_files(
        ROOT,
        lambda p: p.suffix in _TEXT_SUFFIXES or p.name == "Dockerfile" or p.parent.name == ".ci",
    )
    assert {ROOT / "README.md", ROOT / ".ci" / "run", Path(__file__).resolve()} <= set(files)
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        if path not in FROZEN
        for line in references_outside(path)
    ]
    assert offenders == [], "describe it here, or point to docs/, instead"


# --- The rule reference --------------------------------------------------------------------

RULES_DOC = ROOT / "docs" / "rules.md"
# The custom fields the reference's examples use.
_EXAMPLE_FIELDS = FieldRegistry.from_declarations({"plan": "text", "score": "number"})
_JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ERROR_EXAMPLE = re.compile(
    r"^- (Simple API, )?`(\{[^`]*\})`[^\n]*?: 400 at\s+`([^`]+)`, `(\w+)`", re.MULTILINE
)


def _parse_example(example: Any) -> RuleTree:
    if "any" in example or "all" in example:
        return parse_v2_rules(example, _EXAMPLE_FIELDS)
    if "kind" in example:
        return parse_v2_rules({"any": [{"all": [example]}]}, _EXAMPLE_FIELDS)
    if "matchType" in example:
        return parse_v1_rules(example, _EXAMPLE_FIELDS)
    return parse_simple_rules(example["rules"], _EXAMPLE_FIELDS)


def test_every_rule_example_of_the_reference_is_accepted() -> None:
    examples = [json.loads(block) for block in _JSON_BLOCK.findall(RULES_DOC.read_text())]
    rules = [e for e in examples if "errors" not in e]
    assert len(rules) >= 10
    kinds = {c["kind"] for e in rules for c in _conditions(e)}
    assert kinds == {"field", "activity", "deliverability", "membership", "isp", "segment"}
    for example in rules:
        assert _parse_example(example).conditions()


def _conditions(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The conditions of a rule tree at every depth (or the condition itself)."""
    if "kind" in node:
        return [node]
    children = node.get("any") or node.get("all") or ([node["not"]] if "not" in node else [])
    return [c for child in children if isinstance(child, dict) for c in _conditions(child)]


def test_the_error_examples_of_the_reference_are_what_the_parsers_say() -> None:
    cases = _ERROR_EXAMPLE.findall(RULES_DOC.read_text())
    assert len(cases) == 4
    for simple, body, loc, type_ in cases:
        condition = json.loads(body)
        with pytest.raises(RulesInvalid) as raised:
            if simple:
                parse_simple_rules([condition], _EXAMPLE_FIELDS, loc="")
            else:
                parse_v2_rules({"any": [{"all": [condition]}]}, _EXAMPLE_FIELDS)
        (error,) = raised.value.errors
        assert (error.loc.replace("rules_json.any[0].all[0]", "...all[0]"), error.type) == (
            loc,
            type_,
        )


def test_the_reference_states_the_limits_of_the_code() -> None:
    text = RULES_DOC.read_text()
    rows = {
        "nodes in one `any` list (at any level)": str(limits.MAX_GROUPS),
        "nodes in one `all` list (at any level)": str(limits.MAX_CONDITIONS_PER_GROUP),
        "nesting depth (each `any`/`all`/`not` counts one, the top level is 1)": str(
            limits.MAX_DEPTH
        ),
        "conditions in the whole tree, at every depth": str(limits.MAX_CONDITIONS),
        "v1 filters": str(limits.MAX_V1_FILTERS),
        "simple rules": str(limits.MAX_SIMPLE_RULES),
        "`within_days`, `days_window.days`": f"1 to {limits.MAX_DAYS}",
        "characters of a field name (and of an operator name)": str(limits.MAX_FIELD_NAME_LENGTH),
        "characters of a text value or of a text array element": str(limits.MAX_STRING_LENGTH),
    }
    for what, limit in rows.items():
        assert f"| {what} | {limit} |" in text
    assert f"| {limits.MAX_ARRAY_ITEMS} |" in text
    assert f"({limits.MAX_RULES_BYTES:,} bytes)" in text


def test_the_reference_lists_every_field_and_the_operators_of_each_type() -> None:
    text = RULES_DOC.read_text()
    for field_type, operators in OPERATORS_BY_TYPE.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {field_type} | `"))
        assert set(re.findall(r"`(\w+)`", row)) == set(operators)
    for name in BUILTIN_FIELDS:
        assert f"`{name}`" in text


def test_no_file_holds_merge_conflict_markers() -> None:
    markers = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".sql", ".yaml", ".yml", ".toml", ".json"))
        and markers.search((ROOT / name).read_text(errors="replace"))
    ]
    assert found == []
