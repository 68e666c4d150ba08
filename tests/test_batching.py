"""BATCH=K in the harness: cells of one ZSSR method trained together, recorded cell by cell, exactly once."""
from __future__ import annotations

import pytest

import fake_methods
from bench.plan import WorkItem, make_batches
from bench.results import CELL_KEY, END_METRIC, Cell, read_results
from bench.runner import RunOptions, run
from bench.session import resolve_batch

fake_methods.register()


def _opts(folder, out, batch, methods=("test-zssr", "test-nearest"), **kw):
    return RunOptions(dataset=str(folder), methods=methods, protocol="rgb", profile="quick", device="cpu", out=out,
                      scales=(2, 3), metrics=("psnr-y",), batch=batch, **kw)


def _table(out):
    df = read_results(out / "results.csv")
    return df, df[df.metric != END_METRIC].pivot_table(index=CELL_KEY, columns="metric", values="value")


def _item(method, image, config="c", action="run"):
    cell = Cell("d", "cat", image, "sha", "bicubic", 2, method, config)
    return WorkItem(cell, None, action)


def test_make_batches_groups_by_method_and_config_in_plan_order():
    todo = [_item("z", "a"), _item("n", "a"), _item("z", "b"), _item("z", "c", config="other"),
            _item("z", "d", action="metrics"), _item("z", "e"), _item("z", "f")]
    batches = make_batches(todo, 3, {"z"})
    assert [[i.cell.slug for i in b.items] for b in batches] == [
        ["z__a__x2", "z__b__x2", "z__e__x2"], ["n__a__x2"], ["z__c__x2"], ["z__d__x2"], ["z__f__x2"]]
    assert [len(b) for b in make_batches(todo, 1, {"z"})] == [1] * len(todo)
    assert batches[0].slug.endswith("(+2 in its batch)")


def test_batch_option_is_checked_and_auto_is_one_on_the_cpu(folder, tmp_path):
    import torch

    assert resolve_batch("auto", torch.device("cpu")) == 1
    assert resolve_batch("4", torch.device("cpu")) == 4
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="batch"):
            run(_opts(folder, tmp_path / "x", bad), render=False)


def test_batched_cells_match_single_cells_and_share_the_batch_time(folder, tmp_path):
    one, three = tmp_path / "one", tmp_path / "three"
    assert run(_opts(folder, one, "1"), render=False).ok
    summary = run(_opts(folder, three, "3"), render=True)
    assert summary.ok and summary.n_run == 20
    df1, t1 = _table(one)
    df3, t3 = _table(three)
    assert set(t1.index) == set(t3.index)  # BATCH is not part of a cell's identity
    assert (df3.groupby(CELL_KEY + ["metric"]).size() == 1).all()
    zssr = t3.xs("test-zssr", level="method")
    batched = zssr[zssr["batch-size"] > 1]
    assert len(batched) == 9 and (batched["batch-size"] == 3).all()  # 10 cells: 3 batches of 3, the last alone
    assert (zssr["restarts"] == 0).all()  # recorded for every ZSSR cell, batched or not
    # the cells of one batch share its wall time: their seconds add up to it, less the batch's set-up (measured
    # 0.3 %: the LR images to problems)
    for _, group in batched.groupby("seconds-batch"):
        assert len(group) == 3
        assert 0.8 * group["seconds-batch"].iloc[0] < group["seconds-total"].sum() <= group["seconds-batch"].iloc[0]
    # same algorithm, same seeds: the batched PSNR follows the single cells (12 iterations on noise images)
    diff = (t3["psnr-y"] - t1["psnr-y"]).abs()
    assert diff.max() < 0.05, diff.max()
    report = (three / "report.md").read_text()
    assert "Batched training (BATCH): test-zssr (9 cells, batches of up to 3)" in report


def test_an_interrupted_batch_reruns_its_cells_exactly_once(folder, tmp_path, monkeypatch):
    from baselines.zssr_method import _ZSSRPreset

    out = tmp_path / "run"
    calls = []
    original = _ZSSRPreset.run

    def interrupt_second(self, requests):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, requests)

    monkeypatch.setattr(_ZSSRPreset, "run", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        run(_opts(folder, out, "3", methods=("test-zssr",)), render=False)
    first = read_results(out / "results.csv")
    assert len(first[first.metric == END_METRIC]) == 3  # the first batch's cells, none of the second's
    monkeypatch.setattr(_ZSSRPreset, "run", original)
    summary = run(_opts(folder, out, "3", methods=("test-zssr",)), render=False)
    assert summary.ok and summary.n_done_before == 3 and summary.n_run == 7
    df = read_results(out / "results.csv")
    assert len(df[df.metric == END_METRIC]) == df.groupby(CELL_KEY).ngroups == 10
    assert (df.groupby(CELL_KEY + ["metric"]).size() == 1).all()


def test_batches_under_worker_processes(folder, tmp_path):
    out = tmp_path / "w"
    summary = run(_opts(folder, out, "2", methods=("test-zssr",), executor="local-gpus", workers=2), render=False)
    assert summary.ok
    df, table = _table(out)
    assert len(df[df.metric == END_METRIC]) == df.groupby(CELL_KEY).ngroups == 10
    assert (table["batch-size"] == 2).all()
