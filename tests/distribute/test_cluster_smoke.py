"""Two workers on localhost through every piece of kyolo.distribute, quickly (the default run).

:mod:`tests.distribute.tiny_worker`: a small model with synchronized BatchNorm, per-worker input
shards, global batch 8, 2 epochs. Both workers end with the weights and epoch losses of one
process training on the whole batch (float32 rounding: 1e-5), the chief alone keeps its files,
the other worker's temporary folder is gone. Without the workaround of
:func:`kyolo.distribute.patch_multi_worker` Keras 3 fails at the first step.
"""

import json

import numpy as np

from tests.distribute import cluster, tiny_worker

TIMEOUT = 300  # s; ~20 s on a quiet 2-core machine


def test_two_workers_train_as_one_process(tmp_path, monkeypatch):
    out = tmp_path / "out"
    codes = cluster.run(
        [str(out)], 2, tmp_path / "logs", TIMEOUT, module="tests.distribute.tiny_worker"
    )
    logs = [(tmp_path / "logs" / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    results = [json.loads(log.strip().splitlines()[-1]) for log in logs]
    monkeypatch.delenv("TF_CONFIG", raising=False)
    single = tiny_worker.train(str(tmp_path / "single"))
    for result in results:
        np.testing.assert_allclose(result["loss"], single["loss"], rtol=1e-5)
        for a, b in zip(result["weights"], single["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())
    assert (out / "history.csv").is_file() and (out / "backup" / "training_metadata.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["backup", "history.csv"]  # no workertemp_1
