"""Safe loading: no pickle, eval or unsafe YAML in the code; models are Lambda-free and reload with
``safe_mode=True``. (Path traversal from annotation files: ``tests/data/test_coco.py``,
``test_voc.py`` and ``test_annotations.py``, ``*path_traversal*`` / ``resolve_in_root``.)"""

import pathlib
import re
import subprocess
import sys
import tomllib

import keras
import numpy as np
import pytest

from kyolo.config import YOLOV3, YOLOV3_TINY
from kyolo.models import MODELS, build_model
from tests.helpers import REPO, nano_config

CODE = ("kyolo", "training", "experiments", "benchmarks")
RULES = ("S102", "S301", "S307", "S403", "S506")
"""exec, pickle/marshal loads, eval, pickle-family imports, yaml.load without a safe loader."""


def test_ruff_security_rules_are_selected_for_the_package():
    selected = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"S301", "S307", "S506"} <= set(selected["select"])


def test_no_exec_eval_pickle_or_unsafe_yaml_in_the_code():
    ruff = pathlib.Path(sys.executable).with_name("ruff")
    # ruff is a [dev] requirement, installed by `make test` and CI: its absence is a broken
    # set-up, not a reason to skip the security check.
    assert ruff.exists(), f"{ruff} not found: install the dev extras (pip install -e '.[dev]')"
    paths = [p for p in CODE if (REPO / p).is_dir()]
    argv = [str(ruff), "check", "--no-cache", "--isolated", "--select", ",".join(RULES), *paths]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# Built from pieces so that this file does not match itself.
UNSAFE = re.compile("|".join(["safe_mode" + r"\s*=\s*False", "allow_pickle" + r"\s*=\s*True"]))


def test_nothing_turns_safe_loading_off():
    hits = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for top in (*CODE, "tests")
        for path in sorted((REPO / top).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE.search(line)
    ]
    assert not hits


@pytest.mark.parametrize(
    "name, cfg",
    [("nano", nano_config()), ("yolov3_tiny", YOLOV3_TINY), ("yolov3", YOLOV3)],
    ids=["nano", "yolov3_tiny", "yolov3"],
)
def test_models_hold_only_built_in_layers(name, cfg):
    assert set(MODELS) == {"nano", "yolov3_tiny", "yolov3"}  # a new model joins this list
    model = build_model(name, cfg)
    foreign = [
        f"{layer.name}: {type(layer).__module__}.{type(layer).__name__}"
        for layer in model.layers
        if not type(layer).__module__.startswith("keras.src.layers")
        or isinstance(layer, keras.layers.Lambda)
    ]
    assert not foreign


def test_safe_mode_refuses_a_lambda_layer(tmp_path):
    # The control: what safe_mode=True protects against is real.
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="Lambda"):
        keras.saving.load_model(tmp_path / "lambda.keras", safe_mode=True)


def test_a_compiled_nano_model_round_trips_in_safe_mode(tmp_path):
    from kyolo.losses import YoloLoss
    from kyolo.metrics import YoloLossComponents
    from kyolo.saving import save_model

    cfg = nano_config("yolov5")
    model = build_model("nano", cfg, width=4)
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
    model.compile("adam", loss=losses, metrics=[[YoloLossComponents(loss)] for loss in losses])
    model.optimizer.build(model.trainable_variables)
    save_model(model, tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    images = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    for a, b in zip(model(images), again(images), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [loss.cfg for loss in again.loss] == [cfg, cfg]
