"""The benchmark scripts run end to end (as a user runs them, in a subprocess) on tiny settings."""

import pytest

from tests.helpers import run_module


@pytest.mark.slow
def test_train_step_benchmark_prints_its_table():
    """One tiny graph-mode pool: the step, its loss-less ablation and the loss alone (~40 s)."""
    result = run_module(
        "benchmarks.train_step",
        *("--cases", "nano:v3", "--modes", "graph", "--nano-size", "64"),
        *("--nano-batch", "2", "--nano-repeats", "1", "--set", "max_boxes=10"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| nano:v3")]
    assert len(table) == 1, result.stdout
