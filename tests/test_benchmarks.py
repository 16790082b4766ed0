"""The benchmark scripts run end to end (as a user runs them, in a subprocess) on tiny settings."""

import json

import pytest

from tests.helpers import run_module


@pytest.mark.slow
def test_train_step_benchmark_prints_its_table():
    """One tiny graph-mode pool: the step, its loss-less ablation and the loss alone (~40 s)."""
    result = run_module(
        "benchmarks.train_step",
        *("--cases", "nano:v3", "--modes", "graph", "--nano-size", "64"),
        *("--nano-batch", "2", "--nano-repeats", "1", "--set", "max_boxes=10"),
        *("--precisions", "float32", "--float16-cases"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| nano:v3")]
    assert len(table) == 1, result.stdout


@pytest.mark.slow
def test_train_speed_benchmark_runs_without_torch():
    """kyolo's tiny YOLOv3 step in graph mode; the torch row says why it is skipped (~40 s)."""
    result = run_module(
        "benchmarks.train_speed",
        *("--models", "yolov3_tiny", "--precisions", "float32", "--modes", "graph"),
        *("--size", "64", "--batch", "1", "--tiny-repeats", "1", "--parts", "forward"),
        *("--torch-python", "/nonexistent/python", "--torch-omp", "passive"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| yolov3_tiny")]
    assert len(rows) == 3, result.stdout  # step, forward, skipped torch
    assert "skipped: no torch interpreter" in rows[-1]


@pytest.mark.slow
def test_input_pipeline_benchmark_prints_pipeline_and_step(tmp_path):
    """The letterbox pipeline with and without the cache, against the nano step (~60 s)."""
    result = run_module(
        "benchmarks.input_pipeline",
        *("--cases", "nano:64", "--variants", "letterbox", "--cores", "1", "--batch", "4"),
        *("--batches", "2", "--repeats", "1", "--data-dir", str(tmp_path / "digits")),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| nano:64")]
    assert [row.split("|")[3].strip() for row in rows] == [
        "letterbox",
        "letterbox, cached",
        "training step (graph, float32)",
    ], result.stdout


@pytest.mark.slow
def test_time_to_accuracy_benchmark_records_the_kyolo_curve(tmp_path):
    """Two epochs of the training job on 16 images, its curve and plot (~90 s)."""
    plot = tmp_path / "curves.png"
    result = run_module(
        "benchmarks.time_to_accuracy",
        *("--jobs", "kyolo", "--epochs", "2", "--digits", "16", "8"),
        *("--data-dir", str(tmp_path / "digits"), "--out", str(tmp_path / "out")),
        *("--plot", str(plot), "--kyolo-args", "--batch-size", "8", "--img-size", "64"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    curve = json.loads((tmp_path / "out" / "curves.json").read_text())
    (job,) = curve.values()
    assert job["returncode"] == 0 and [point[1] for point in job["curve"]] == [1, 2], job
    assert plot.stat().st_size > 0
