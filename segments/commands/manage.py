"""`segments list|field|key|contact ...`: managing an account's data without SQL.

Each subcommand takes the account id first, prints its result as JSON on stdout, and on a
refusal prints what to do on stderr and exits 1. The same operations are in the HTTP API
(README: HTTP API); both call worker/ (lists, fields, accounts, contact_lookup).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from segments.commands import Command, Run
from worker import fields, lists
from worker.accounts import (
    ALL_SCOPES,
    account_exists,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
)
from worker.contact_lookup import (
    contact_list_ids,
    find_contact,
    resolve_refs,
    segments_of_contact,
)
from worker.db import Conn, connect
from worker.migrations import migrate
from worker.settings import Settings

Action = Callable[[Conn, argparse.Namespace], Awaitable[Any]]


class Refused(Exception):
    """The command cannot do it; the message says why and what to do instead."""


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_plain))


def _plain(value: Any) -> str:
    """ids as text, times in ISO 8601 as the API shows them."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return dict(record)


@contextlib.asynccontextmanager
async def account_connection(settings: Settings, account_id: uuid.UUID) -> AsyncIterator[Conn]:
    await migrate(settings.database_url)
    conn = await connect(settings.database_url)
    try:
        if not await account_exists(conn, account_id):
            raise Refused(f"no account {account_id}; `segments account create NAME` makes one")
        yield conn
    finally:
        await conn.close()


def _runner(actions: dict[str, Action], dest: str) -> Run:
    async def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            async with account_connection(settings, args.account_id) as conn:
                _print(await actions[getattr(args, dest)](conn, args))
        except Refused as exc:
            print(f"segments: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def _sub(
    sub: Any, name: str, help_: str, *arguments: tuple[str, dict[str, Any]]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    parser.add_argument("account_id", type=uuid.UUID, metavar="ACCOUNT_ID")
    for argument, options in arguments:
        parser.add_argument(argument, **options)
    return parser


# --- lists ----------------------------------------------------------------------------------

_LIST_ID = ("list_id", {"type": uuid.UUID, "metavar": "LIST_ID"})
_CONTACTS = ("contacts", {"nargs": "+", "metavar": "CONTACT", "help": "contact id or email"})


def list_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="list_command", required=True)
    _sub(sub, "list", "the account's lists with their member counts")
    _sub(sub, "create", "create a list", ("name", {}))
    _sub(sub, "rename", "rename a list", _LIST_ID, ("name", {}))
    _sub(sub, "delete", "delete a list (refused while a segment uses it)", _LIST_ID)
    _sub(sub, "add", "add contacts to a list", _LIST_ID, _CONTACTS)
    _sub(sub, "remove", "remove contacts from a list", _LIST_ID, _CONTACTS)


async def _all_lists(conn: Conn, args: argparse.Namespace) -> Any:
    return {"items": [_row(r) for r in await lists.all_lists(conn, args.account_id)]}


async def _create_list(conn: Conn, args: argparse.Namespace) -> Any:
    return _row(await lists.create_list(conn, args.account_id, _name(args.name)))


async def _rename_list(conn: Conn, args: argparse.Namespace) -> Any:
    row = await lists.rename_list(conn, args.account_id, args.list_id, _name(args.name))
    if row is None:
        raise Refused(_no_list(args))
    return _row(row)


async def _delete_list(conn: Conn, args: argparse.Namespace) -> Any:
    try:
        async with conn.transaction():
            deleted = await lists.delete_list(conn, args.account_id, args.list_id)
    except lists.ListInUse as exc:
        raise Refused(str(exc)) from None
    if not deleted:
        raise Refused(_no_list(args))
    return {"deleted": str(args.list_id)}


async def _change_members(conn: Conn, args: argparse.Namespace) -> Any:
    async with conn.transaction():
        if await lists.get_list(conn, args.account_id, args.list_id) is None:
            raise Refused(_no_list(args))
        ids, unknown = await resolve_refs(conn, args.account_id, args.contacts)
        if unknown:
            raise Refused(
                f"no contacts {unknown} in this account; add them first "
                "(segments import, or POST /api/v2/contacts)"
            )
        adding = args.list_command == "add"
        joined, left = await lists.change_members(
            conn, args.account_id, args.list_id, ids if adding else [], [] if adding else ids
        )
    return {"added": len(joined), "removed": len(left)}


def _name(name: str) -> str:
    if not name.strip() or len(name) > 255:
        raise Refused("a list name is 1 to 255 characters, not blank")
    return name


def _no_list(args: argparse.Namespace) -> str:
    return f"no list {args.list_id} in account {args.account_id}; `segments list list` shows them"


# --- custom fields --------------------------------------------------------------------------


def field_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="field_command", required=True)
    _sub(sub, "list", "the account's custom fields")
    _sub(
        sub,
        "declare",
        "declare a custom field, or change its type (segments using it are rebuilt)",
        ("key", {"help": fields.KEY_HELP}),
        ("data_type", {"choices": fields.FIELD_TYPES, "metavar": "TYPE"}),
    )
    _sub(sub, "remove", "undeclare a field (refused while a segment uses it)", ("key", {}))


async def _all_fields(conn: Conn, args: argparse.Namespace) -> Any:
    return {"items": [_row(r) for r in await fields.all_fields(conn, args.account_id)]}


async def _declare_field(conn: Conn, args: argparse.Namespace) -> Any:
    try:
        change = await fields.declare_field(conn, args.account_id, args.key, args.data_type)
    except fields.FieldInvalid as exc:
        raise Refused(str(exc)) from None
    return {
        "key": change.key,
        "data_type": change.data_type,
        "previous_type": change.previous_type,
        "rebuilt_segments": [{"id": s.id, "name": s.name} for s in change.rebuilt],
    }


async def _remove_field(conn: Conn, args: argparse.Namespace) -> Any:
    try:
        removed = await fields.remove_field(conn, args.account_id, args.key)
    except fields.FieldInUse as exc:
        raise Refused(str(exc)) from None
    if not removed:
        raise Refused(f"no custom field {args.key!r}; `segments field list` shows them")
    return {"removed": args.key}


# --- API keys -------------------------------------------------------------------------------


def key_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="key_command", required=True)
    create = _sub(sub, "create", "create a key: printed this once, stored only as a hash")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=ALL_SCOPES,
        help="repeat for several (default: all of them)",
    )
    create.add_argument("--name", help="to tell keys apart in `segments key list`")
    _sub(sub, "list", "the account's keys, without the keys")
    _sub(sub, "revoke", "revoke a key (at once)", ("key_id", {"type": uuid.UUID}))


async def _create_key(conn: Conn, args: argparse.Namespace) -> Any:
    issued = await issue_api_key(conn, args.account_id, args.scopes or ALL_SCOPES, args.name)
    return {**issued.info.shown(), "key": issued.key}


async def _all_keys(conn: Conn, args: argparse.Namespace) -> Any:
    return {"items": [k.shown() for k in await list_api_keys(conn, args.account_id)]}


async def _revoke_key(conn: Conn, args: argparse.Namespace) -> Any:
    info = await revoke_api_key(conn, args.account_id, args.key_id)
    if info is None:
        raise Refused(f"no key {args.key_id} in this account; `segments key list` shows them")
    return info.shown()


# --- contacts -------------------------------------------------------------------------------


def contact_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="contact_command", required=True)
    _sub(
        sub,
        "show",
        "a contact, its lists and the segments it is in",
        ("contact", {"metavar": "CONTACT", "help": "contact id or email"}),
    )


async def _show_contact(conn: Conn, args: argparse.Namespace) -> Any:
    row = await find_contact(conn, args.account_id, args.contact)
    if row is None:
        raise Refused(f"no contact {args.contact!r} in account {args.account_id}")
    segments = await segments_of_contact(conn, args.account_id, row["id"])
    return {
        **_row(row),
        "list_ids": await contact_list_ids(conn, args.account_id, row["id"]),
        "segments": [_row(s) for s in segments],
    }


COMMANDS = (
    Command(
        "list",
        "contact lists: list, create, rename, delete, add/remove members",
        _runner(
            {
                "list": _all_lists,
                "create": _create_list,
                "rename": _rename_list,
                "delete": _delete_list,
                "add": _change_members,
                "remove": _change_members,
            },
            "list_command",
        ),
        list_arguments,
    ),
    Command(
        "field",
        "custom fields: list, declare (or change type), remove",
        _runner(
            {"list": _all_fields, "declare": _declare_field, "remove": _remove_field},
            "field_command",
        ),
        field_arguments,
    ),
    Command(
        "key",
        "API keys: create, list (without the keys), revoke",
        _runner({"create": _create_key, "list": _all_keys, "revoke": _revoke_key}, "key_command"),
        key_arguments,
    ),
    Command(
        "contact",
        "look up a contact by id or email, with its lists and segments",
        _runner({"show": _show_contact}, "contact_command"),
        contact_arguments,
    ),
)
