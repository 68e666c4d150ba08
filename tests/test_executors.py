"""Executors give the same results file (up to row order and timing) and survive a dying worker."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import fake_methods
from bench.metrics import COST_METRICS
from bench.results import CELL_KEY, read_results
from bench.runner import RunOptions, run

fake_methods.register()
TIMING = set(COST_METRICS)


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(3)
    for cat in ("a", "b"):
        (tmp_path / "imgs" / cat).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cat / f"{cat}{i}.png")
    return tmp_path / "imgs"


def _run(folder, out, executor, methods=("test-nearest",), workers=None):
    return run(RunOptions(dataset=str(folder), methods=methods, scales=(2, 3), profile="quick", device="cpu", out=out,
                          metrics=("psnr-y", "psnr-rgb"), executor=executor, workers=workers, save_images=False),
               render=False)


def _comparable(path: Path) -> pd.DataFrame:
    df = read_results(path)
    df = df[~df.metric.isin(TIMING)].drop(columns=["device", "session"])
    df = df.assign(value=df.value.where(df.metric != "cell"))  # an end row counts its block's rows (timing too)
    return df.sort_values(CELL_KEY + ["metric"]).reset_index(drop=True)


def test_local_gpus_matches_local(folder, tmp_path):
    a = _run(folder, tmp_path / "local", "local")
    b = _run(folder, tmp_path / "workers", "local-gpus", workers=2)
    assert a.ok and b.ok
    pd.testing.assert_frame_equal(_comparable(tmp_path / "local" / "results.csv"),
                                  _comparable(tmp_path / "workers" / "results.csv"))


def test_killed_worker_is_retried(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("DIE_ONCE_MARKER", str(tmp_path / "marker"))
    summary = _run(folder, tmp_path / "die", "local-gpus", methods=("test-die-once",), workers=2)
    assert (tmp_path / "marker").exists(), "the worker never died: the test did not test anything"
    assert summary.ok, summary.failures
    df = read_results(tmp_path / "die" / "results.csv")
    assert df.groupby(CELL_KEY).ngroups == 4 * 2
    assert (df.groupby(CELL_KEY + ["metric"]).size() == 1).all()


def test_ray_matches_local(folder, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install '.[ray]')")
    _run(folder, tmp_path / "local", "local")
    summary = _run(folder, tmp_path / "ray", "ray", workers=2)
    assert summary.ok
    pd.testing.assert_frame_equal(_comparable(tmp_path / "local" / "results.csv"),
                                  _comparable(tmp_path / "ray" / "results.csv"))


def test_retry_queue_puts_a_lost_batch_first_until_its_attempts_are_spent():
    from bench.executors import MAX_ATTEMPTS, RetryQueue
    from bench.plan import WorkBatch, WorkItem
    from bench.results import Cell

    a, b = (WorkBatch((WorkItem(Cell("d", "", image, "sha", "bicubic", 2, "m", "c"), None),)) for image in "ab")
    queue = RetryQueue([a, b])
    assert queue.take() is a
    for attempt in range(1, MAX_ATTEMPTS):
        assert queue.retry(a)  # lost with its worker: handed out again before b
        assert queue.take() is a and queue.attempts[a.key] == attempt + 1
    assert not queue.retry(a)  # MAX_ATTEMPTS tries: the caller records its cells as failed
    assert queue.take() is b and not queue and queue.take() is None
