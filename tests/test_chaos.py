"""The chaos suite (bench/chaos.py, docs/reliability.md) runs here in two short forms: its
self-test (a planted unannounced write and a planted feed item must each be caught, so the
checker can fail) and a 60-second smoke run with a fixed seed and every fault kind that fits
in it.

Both start a PostgreSQL server and a RabbitMQ node of their own (never the shared ones) and
the service as real processes, so they need the server binaries: skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from bench.chaos_check import IndexedEvaluator
from bench.chaos_servers import PG_BIN, RABBITMQ_SERVER
from tests.reference import Data, Evaluator
from tests.strategies import ACCOUNT, LISTS, NOW, REFERENCED, data_sets, nested_v2_rules

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        not (
            (PG_BIN / "initdb").exists()
            and RABBITMQ_SERVER.exists()
            and shutil.which("rabbitmqctl")
        ),
        reason="needs PostgreSQL's server binaries and rabbitmq-server installed",
    ),
]


def _chaos(*args: str, timeout: float) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def _summary(output: str) -> dict[str, Any]:
    last = [line for line in output.splitlines() if line.startswith('{"seed"')][-1]
    summary: dict[str, Any] = json.loads(last)
    return summary


def test_self_test_catches_a_planted_unannounced_write_and_feed_item() -> None:
    code, output = _chaos(
        "--self-test", "--seed", "5", "--duration", "5", "--faults", "none",
        "--contacts", "40", "--drivers", "1", "--workers", "1", timeout=600,
    )  # fmt: skip
    assert code == 0, output
    summary = _summary(output)
    assert summary["wrong_memberships"] >= 1  # `subscribed`, and any it also left
    assert summary["feed_inconsistencies"] >= 1, output  # a recorded change that did not happen


def test_smoke_run_with_faults_holds_its_history() -> None:
    """CI's smoke: 60 s of writes under the quick fault kinds on a fixed seed; nothing lost,
    nothing wrong, no feed or message at odds with the members, nothing dead-lettered.
    (Broker restarts, with and without a backlog, take ten seconds and more each: the long
    runs of docs/reliability.md cover them.)"""
    quick = [
        "kill_api", "kill_relay", "kill_worker", "stop_api", "stop_relay", "stop_worker",
        "cut_pg", "cut_amqp", "blackhole_pg", "blackhole_amqp", "pg_terminate", "pg_restart",
        "rabbit_stop_app",
    ]  # fmt: skip
    code, output = _chaos(
        "--seed", "7", "--duration", "60", "--faults", ",".join(quick), "--gap", "0.5", "1.5",
        "--contacts", "60", "--drivers", "1", "--workers", "1", "--settle-timeout", "60",
        timeout=600,
    )  # fmt: skip
    summary = _summary(output)
    assert code == 0, output
    assert summary["violations"] == [] and summary["lost"] == 0, output
    assert sum(summary["faults"].values()) >= 5, summary


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data_sets(), nested_v2_rules())
def test_the_checkers_indexed_evaluator_agrees_with_the_reference(data: Data, rules: Any) -> None:
    """The checker's faster evaluator (bench/chaos_check.py) answers as the reference does."""
    referenced: dict[uuid.UUID, set[uuid.UUID]] = {r: set() for r in REFERENCED}
    want = Evaluator(data, ACCOUNT, NOW, segment_members=referenced).members("v2", rules, LISTS[:1])
    have = IndexedEvaluator(data, ACCOUNT, NOW, segment_members=referenced)
    assert have.members("v2", rules, LISTS[:1]) == want
