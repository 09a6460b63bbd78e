"""`segments demo`: the product in two minutes, through its public API.

1. `data`: migrate, create a demo account and API key, and generate a realistic data set in
   it server-side (contacts with custom fields, lists, engagement events; fixed seed).
2. `services`: use the API at --api-url, or run the API and a worker in this process.
3. `scenario`: create segments over HTTP (every rule kind, the v2 and simple dialects), watch
   them build, read one through v1, change contacts (contact.changed) and watch the counts
   follow; every count is checked against the compiled SQL.
4. `command`: the command line, Ctrl-C, and the curl examples to try next.
`display` draws it all (a live terminal, or log events and plain tables elsewhere).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--contacts", type=_positive, default=100_000, help="contacts to generate (100000)"
    )
    parser.add_argument(
        "--events-per-contact",
        type=_non_negative,
        default=10,
        help="engagement events per contact on average (10)",
    )
    parser.add_argument(
        "--api-url",
        default=None,
        help="the API to use (default http://SEGMENTS_API_HOST:SEGMENTS_API_PORT); "
        "if none answers there, the demo runs one, and a worker, until it ends",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value
