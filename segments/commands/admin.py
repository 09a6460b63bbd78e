"""`segments migrate`, `segments account ...`, `segments explain`: setting up and looking in."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from uuid import UUID

import structlog

from segments.commands import Command, add_segment_arguments
from segments.explain_view import render
from worker.account_delete import DEFAULT_BATCH_SIZE, delete_account
from worker.accounts import create_account
from worker.db import Conn, connect
from worker.explain import explain_segment
from worker.explain_contact import ContactNotFound, explain_contact, explanation_json
from worker.migrations import migrate
from worker.rules import RulesInvalid
from worker.settings import Settings
from worker.store import FIND_UUID, SegmentNotFound, load_segment_rules, resolve_segment

log = structlog.get_logger(__name__)


async def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = await migrate(settings.database_url)
    log.info("migrate.done", applied=applied)
    return 0


def account_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="account_command", required=True)
    create = sub.add_parser("create", help='prints {"account_id":..., "api_key":...}')
    create.add_argument("name")
    delete = sub.add_parser(
        "delete", help="delete the account and all its data, in batches (safe to rerun)"
    )
    delete.add_argument("account_id", type=UUID, metavar="ACCOUNT_ID")
    delete.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="ROWS")


async def run_account(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.database_url)
    conn = await connect(settings.database_url)
    try:
        if args.account_command == "delete":
            return await _delete_account(conn, args)
        account = await create_account(conn, args.name)
    finally:
        await conn.close()
    print(json.dumps({"account_id": str(account.account_id), "api_key": account.api_key}))
    return 0


async def _delete_account(conn: Conn, args: argparse.Namespace) -> int:
    deleted = await delete_account(conn, args.account_id, batch_size=max(1, args.batch_size))
    if not deleted:
        print(f"segments: no account {args.account_id} (already deleted?)", file=sys.stderr)
        return 1
    print(json.dumps({"deleted": str(args.account_id), "rows": deleted}))
    return 0


def explain_arguments(parser: argparse.ArgumentParser) -> None:
    add_segment_arguments(parser)
    parser.add_argument(
        "contact",
        metavar="CONTACT",
        nargs="?",
        help="a contact's id or email: why it is in the segment or not, node by node "
        "(without it: the segment's SQL and plan)",
    )
    parser.add_argument(
        "--analyze", action="store_true", help="run the query too and show real times"
    )
    parser.add_argument(
        "--json", action="store_true", help="with CONTACT: print the HTTP API's JSON answer"
    )


async def run_explain(settings: Settings, args: argparse.Namespace) -> int:
    conn = await connect(settings.database_url)
    try:
        segment_id = await resolve_segment(conn, args.segment, args.account)
        if args.contact is None:
            print(await explain_segment(conn, segment_id, analyze=args.analyze))
        else:
            print(await _explain_contact(conn, segment_id, args.contact, args.json))
    except (SegmentNotFound, ContactNotFound, RulesInvalid) as exc:
        print(f"segments explain: {exc}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
    return 0


async def _explain_contact(conn: Conn, segment_id: UUID, contact: str, as_json: bool) -> str:
    segment = await load_segment_rules(conn, segment_id)
    if segment is None:
        raise SegmentNotFound(f"there is no segment {segment_id}: give {FIND_UUID}")
    got = await explain_contact(conn, segment.account_id, segment_id, contact, datetime.now(UTC))
    if as_json:
        return json.dumps(explanation_json(got), indent=2, ensure_ascii=False)
    return render(got, colour=sys.stdout.isatty())


COMMANDS = (
    Command(
        "migrate",
        "create the database if it is missing and bring its tables up to date (safe to rerun)",
        run_migrate,
    ),
    Command("account", "create or delete an account", run_account, account_arguments),
    Command(
        "explain",
        "show the SQL a segment's rules compile to and PostgreSQL's plan for it; with a "
        "contact, why that contact is in the segment or not",
        run_explain,
        explain_arguments,
    ),
)
