"""kyolo.distribute in one process: TF_CONFIG roles, write folders, batch, precision."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo import distribute
from kyolo.optim import build_optimizer


def _tf_config(monkeypatch, cluster, kind, index):
    config = {"cluster": cluster, "task": {"type": kind, "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))


TWO_WORKERS = {"worker": ["host-a:2222", "host-b:2222"]}
WITH_CHIEF = {"chief": ["host-a:2222"], "worker": ["host-b:2222"]}


@pytest.mark.parametrize(
    "cluster, kind, index, chief",
    [
        (TWO_WORKERS, "worker", 0, True),  # worker 0 leads a cluster without a chief
        (TWO_WORKERS, "worker", 1, False),
        (WITH_CHIEF, "chief", 0, True),
        (WITH_CHIEF, "worker", 0, False),
    ],
)
def test_chief_and_write_dir_follow_tf_config(monkeypatch, cluster, kind, index, chief):
    _tf_config(monkeypatch, cluster, kind, index)
    assert distribute.task() == (kind, index)
    assert distribute.is_chief() is chief
    expected = "runs/a" if chief else f"runs/a/workertemp_{index}"
    assert distribute.write_dir("runs/a") == expected


def test_without_tf_config_the_process_is_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.task() == ("chief", 0) and distribute.is_chief()
    assert distribute.write_dir("out") == "out"


@pytest.mark.parametrize(
    "text, message",
    [
        ("{cluster: 1}", "TF_CONFIG is not valid JSON"),
        ('["worker"]', "TF_CONFIG must be a JSON object"),
        ('{"task": {"type": "worker", "index": "one"}}', "TF_CONFIG 'task' must be"),
        ('{"task": "worker"}', "TF_CONFIG 'task' must be"),
    ],
)
def test_a_malformed_tf_config_is_an_error_naming_it(monkeypatch, text, message):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=message):
        distribute.is_chief()


def test_strategy_registry(monkeypatch):
    assert set(distribute.STRATEGIES) == {"default", "mirrored", "multiworker", "tpu"}
    strategy = distribute.get_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and not distribute.is_multi_worker(strategy)
    assert distribute.global_batch_size(8, strategy) == 8
    with pytest.raises(ValueError, match=r"unknown strategy 'horovod'; choose from \['default'"):
        distribute.get_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="'multiworker' needs TF_CONFIG"):
        distribute.get_strategy("multiworker")


def test_distribute_dataset_in_one_process_is_the_whole_dataset():
    seen = []

    def make(context):
        seen.append(context)
        return tf.data.Dataset.range(5).batch(2)

    ds = distribute.distribute_dataset(distribute.get_strategy("default"), make)
    assert seen == [None] and [b.tolist() for b in ds.as_numpy_iterator()] == [[0, 1], [2, 3], [4]]


def test_patch_multi_worker_leaves_one_process_alone():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    step = model.train_step
    distribute.patch_multi_worker(model, distribute.get_strategy("default"))
    assert model.train_step == step and "_maybe_symbolic_build" not in vars(model)


@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
def test_precision_policy_builds_mixed_models_and_scales_float16_losses(name):
    with distribute.precision_policy(name):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(build_optimizer("adam", 1e-3, ema=True), loss="mse")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert model.layers[0].compute_dtype == name.split("_")[1]
    assert model.layers[0].kernel.dtype == "float32"
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled is (name == "mixed_float16")
    x = np.ones((8, 4), np.float32)
    history = model.fit(x, np.zeros((8, 3), np.float32), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    ema = model.optimizer.inner_optimizer if scaled else model.optimizer
    assert ema.use_ema  # the EMA lives in the (inner) recipe optimizer


def test_unknown_precision():
    with pytest.raises(ValueError, match=r"unknown precision 'float16'; choose from \('float32'"):
        with distribute.precision_policy("float16"):
            pass


def test_mixed_precision_models_output_float32_logits():
    from kyolo.models import build_model
    from tests.helpers import nano_config

    cfg = nano_config("yolov5", 3, 64)
    with distribute.precision_policy("mixed_bfloat16"):
        model = build_model("nano", cfg, width=8)
    outputs = model(np.zeros((1, 64, 64, 3), np.float32))
    assert [o.dtype for o in outputs] == ["float32"] * cfg.num_scales
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    heads = {f"scale_{s}" for s in range(cfg.num_scales)}
    assert {la.compute_dtype for la in convs if la.name not in heads} == {"bfloat16"}
    assert {la.compute_dtype for la in convs if la.name in heads} == {"float32"}
