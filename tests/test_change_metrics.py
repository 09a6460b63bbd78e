"""The contact-change histograms resolve the latency goals: 10 ms to 10 s, finely enough that
a p99 between 0.1 and 0.25 s reads as what it is."""

from __future__ import annotations

from itertools import pairwise

import pytest
from prometheus_client import Histogram

from worker.metrics import CHANGE_LAG, INCREMENTAL_DURATION


def _bounds(histogram: Histogram) -> list[float]:
    return [
        float(sample.labels["le"])
        for family in histogram.collect()
        for sample in family.samples
        if sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf"
    ]


@pytest.mark.parametrize("histogram", [CHANGE_LAG, INCREMENTAL_DURATION], ids=lambda h: h._name)
def test_change_histograms_resolve_10_ms_to_10_s(histogram: Histogram) -> None:
    bounds = _bounds(histogram)
    assert bounds[0] == 0.01
    assert 10 in bounds
    # Tens of milliseconds are told apart, and so are 0.1, 0.15, 0.2 and 0.25 s.
    assert [b for b in bounds if b <= 0.1] == [0.01, 0.025, 0.05, 0.075, 0.1]
    assert len([b for b in bounds if 0.1 < b <= 0.3]) >= 3
    # Up to 10 s no bucket is more than 2.5 times the one below it.
    fine = [b for b in bounds if b <= 10]
    assert all(upper / lower <= 2.5 for lower, upper in pairwise(fine))
