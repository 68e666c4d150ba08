"""Paired datasets: LR images given beside their HR ones (HR/ + LR_x<s>/, <name>_GT.png beside <name>.png, or a
declaration with a [paired] table), what they tell non-blind methods, and their errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.io import savemat

import fake_methods
from bench import datasets as ds
from bench import paths
from bench.cellwork import told_values
from bench.degradations import GivenDegradation, gaussian_kernel
from bench.fetch import sha256_file
from bench.results import read_results
from bench.runner import RunOptions, run

fake_methods.register()


def _hr(seed, h=48, w=40):
    rng = np.random.default_rng(seed)
    return np.clip(ndimage.gaussian_filter(rng.random((h, w, 3)) * 255, (2, 2, 0)), 0, 255).astype(np.uint8)


def _direct(hr, k, s=2):
    lr = np.stack([ndimage.convolve(hr[..., c].astype(float), k, mode="reflect")[::s, ::s] for c in range(3)], -1)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


@pytest.fixture
def pairs(tmp_path):
    """HR/ + LR_x2/ with a per-set kernel (MZSR-style direct subsampling, variance 2) and paired.toml."""
    root = tmp_path / "g20set"
    (root / "HR").mkdir(parents=True)
    (root / "LR_x2").mkdir()
    k = gaussian_kernel((2.0, 2.0))
    for i, name in enumerate(("one", "two")):
        hr = _hr(i)
        Image.fromarray(hr).save(root / "HR" / f"{name}.png")
        Image.fromarray(_direct(hr, k)).save(root / "LR_x2" / f"{name}.png")
    savemat(root / "LR_x2" / "kernel.mat", {"kernel": k})
    (root / "paired.toml").write_text('degradation = "given:g20"\ngrid = "direct"\n')
    return root


def _opts(folder, out, **kw):
    return RunOptions(dataset=str(folder), methods=("bicubic",), profile="quick", device="cpu", out=out,
                      metrics=("psnr-y",), **kw)


def test_a_paired_folder_round_trips(pairs, tmp_path):
    d = ds.load_dataset(str(pairs))
    assert d.paired.degradation == "given:g20" and d.paired.scale == 2 and d.paired.grid == "direct"
    assert d.default_scales == (2,) and [im.lr_file for im in d.images] == ["LR_x2/one.png", "LR_x2/two.png"]
    out = tmp_path / "run"
    first = run(_opts(pairs, out), render=False)
    again = run(_opts(pairs, out), render=False)
    assert (first.n_run, again.n_done_before, again.n_run) == (2, 2, 0)  # resumed: nothing to do
    df = read_results(out / "results.csv")
    assert set(df.degradation) == {"given:g20"}
    assert set(df.image_sha) == {im.content_id for im in d.images}
    # the given LR images are the inputs (not remade from HR): bicubic of them scores what it scores by hand
    from basicsr.utils.matlab_functions import imresize

    from bench.metrics import psnr_y

    for im in d.images:
        hr, lr = d.load(im), d.load_lr(im)
        up = np.clip(np.round(imresize(lr / 255.0, 2) * 255), 0, 255).astype(np.uint8)
        got = df[(df.image == im.name) & (df.metric == "psnr-y")].value.iloc[0]
        assert abs(got - psnr_y(up, hr, 2)) < 1e-9


def test_identity_covers_hr_lr_and_what_is_told(pairs):
    before = {im.name: im.content_id for im in ds.load_dataset(str(pairs)).images}
    lr = np.asarray(Image.open(pairs / "LR_x2" / "one.png")).copy()
    lr[0, 0] ^= 1
    Image.fromarray(lr).save(pairs / "LR_x2" / "one.png")
    after_lr = {im.name: im.content_id for im in ds.load_dataset(str(pairs)).images}
    assert after_lr["one"] != before["one"] and after_lr["two"] == before["two"]
    (pairs / "paired.toml").write_text('degradation = "given:g20"\ngrid = "zssr"\n')
    after_grid = {im.name: im.content_id for im in ds.load_dataset(str(pairs)).images}
    assert after_grid["two"] != after_lr["two"]


def test_non_blind_methods_are_told_the_kernel_and_its_grid(pairs):
    from baselines.zssr_method import ZSSRTrueKernel

    d = ds.load_dataset(str(pairs))
    given = GivenDegradation.of(d)
    hr, lr, drawn = given.given_pair(d, d.images[0], 2, y_only=False)
    assert lr.shape == (24, 20, 3) and hr.shape == (48, 40, 3)
    told = told_values(ZSSRTrueKernel(profile="quick"), drawn)
    np.testing.assert_allclose(told["kernel"], gaussian_kernel((2.0, 2.0)), atol=1e-15)
    assert told["grid"] == "direct" and told["noise"] is None


def test_a_kernel_without_a_grid_is_an_error(pairs):
    (pairs / "paired.toml").write_text('degradation = "given:g20"\n')
    with pytest.raises(ds.DatasetError, match="no grid"):
        ds.load_dataset(str(pairs))


def test_a_mis_sized_pair_is_an_error_naming_both_files(pairs):
    Image.fromarray(_hr(5, 22, 20)).save(pairs / "LR_x2" / "two.png")
    d = ds.load_dataset(str(pairs))
    with pytest.raises(ValueError, match=r"HR/two.png / LR_x2/two.png.*LR image is 20x22.*must be 20x24"):
        GivenDegradation.of(d).given_pair(d, d.images[1], 2, y_only=False)


def test_a_missing_partner_is_an_error_naming_the_file(pairs):
    (pairs / "LR_x2" / "two.png").unlink()
    with pytest.raises(ds.DatasetError, match=r"HR/two.png has no partner \(its LR image 'two' is missing\)"):
        ds.load_dataset(str(pairs))


def test_the_gt_beside_lr_layout(tmp_path):
    root = tmp_path / "mzsrstyle"
    root.mkdir()
    for i, name in enumerate(("baby", "bird")):
        hr = _hr(i)
        Image.fromarray(hr).save(root / f"{name}_GT.png")
        Image.fromarray(_direct(hr, gaussian_kernel((2.0, 2.0)))).save(root / f"{name}.png")
    d = ds.load_dataset(str(root))
    assert d.paired.degradation == "given:mzsrstyle" and d.paired.scale == 2 and d.paired.kernel is None
    assert [(im.file, im.lr_file) for im in d.images] == [("baby_GT.png", "baby.png"), ("bird_GT.png", "bird.png")]


def test_a_paired_dataset_refuses_other_degradations_and_scales(pairs, tmp_path):
    with pytest.raises(ValueError, match="gives its LR images"):
        run(_opts(pairs, tmp_path / "a", degradations=("aniso-gaussian",)), render=False)
    with pytest.raises(ValueError, match="x2 only"):
        run(_opts(pairs, tmp_path / "b", scales=(4,)), render=False)


def test_a_declared_paired_dataset_is_checksummed(pairs, tmp_path, monkeypatch):
    """A registered declaration: [paired] with a checksummed kernel, per-image LR files with pixel checksums."""
    defs = tmp_path / "defs"
    defs.mkdir()
    d = ds.load_dataset(str(pairs))
    images = "".join(
        f'[[images]]\nname = "{im.name}"\ncategory = "x"\nfile = "{im.file}"\n'
        f'pixels_sha256 = "{ds.pixels_sha256(d.load(im))}"\nlr_file = "{im.lr_file}"\n'
        f'lr_pixels_sha256 = "{ds.pixels_sha256(d.load_lr(im))}"\n' for im in d.images)
    (defs / "declared.toml").write_text(
        'name = "declared"\nversion = "1"\n[paired]\ndegradation = "given:g20"\nscale = 2\ngrid = "direct"\n'
        f'kernel = "LR_x2/kernel.mat"\nkernel_sha256 = "{sha256_file(pairs / "LR_x2" / "kernel.mat")}"\n' + images)
    monkeypatch.setattr(paths, "DATASET_DEFS", defs)
    data = tmp_path / "data"
    data.mkdir()
    (data / "declared").symlink_to(pairs)
    monkeypatch.setenv("ZSSR_BENCH_DATA", str(data))
    declared = ds.load_dataset("declared")
    assert declared.paired.kernel == "LR_x2/kernel.mat" and declared.default_scales == (2,)
    _, lr, drawn = GivenDegradation.of(declared).given_pair(declared, declared.images[0], 2, y_only=False)
    assert np.array_equal(lr, d.load_lr(d.images[0])) and drawn.grid == "direct"
    out = tmp_path / "declared-run"
    assert run(_opts("declared", out), render=False).n_run == 2
    assert run(_opts("declared", out), render=False).n_run == 0
    # a changed LR file is caught by its checksum
    lr_file = pairs / "LR_x2" / "one.png"
    bad = np.asarray(Image.open(lr_file)).copy()
    bad[1, 1] ^= 1
    Image.fromarray(bad).save(lr_file)
    with pytest.raises(ds.DatasetError, match="pixel checksum mismatch for LR_x2/one.png"):
        declared.load_lr(declared.images[0])
    savemat(pairs / "LR_x2" / "kernel.mat", {"kernel": gaussian_kernel((1.0, 1.0))})
    with pytest.raises(ds.DatasetError, match="checksum mismatch for LR_x2/kernel.mat"):
        declared.kernel_for(declared.images[1])


def test_grids_match_zssr():
    from zssr.kernels import GRIDS

    assert ds.GRIDS == GRIDS


MZSR_ROOT = paths.Path(__import__("os").environ.get("ZSSR_BENCH_MZSR_ROOT", "/tmp/mzsr_root"))


@pytest.mark.skipif(not (MZSR_ROOT / "mzsr-g20-set5" / "Input" / "g20" / "kernel.mat").is_file(),
                    reason="MZSR's files (JWSoh/MZSR) not under ZSSR_BENCH_MZSR_ROOT/mzsr-g20-set5")
def test_the_declared_mzsr_g20_set_is_what_the_direct_step_makes(monkeypatch):
    """bench/dataset_defs/mzsr-g20-set5.toml: MZSR's own LR files (checksummed) are exactly gauss-var-direct:2.0 of
    their GT images, and the kernel told is the step's."""
    from bench.degradations import parse

    monkeypatch.setenv("ZSSR_BENCH_DATA", str(MZSR_ROOT))
    d = ds.load_dataset("mzsr-g20-set5")
    given = GivenDegradation.of(d)
    assert given.id == "given:g20" and d.paired.grid == "direct"
    for im in d.images:
        hr, lr, drawn = given.given_pair(d, im, 2, y_only=False)
        _, made, made_drawn = parse("gauss-var-direct:2.0").make_pair(d.load(im), 2, im.name, False, im.content_id)
        assert np.array_equal(lr, made), im.name
        np.testing.assert_allclose(drawn.kernel, made_drawn.kernel, rtol=0, atol=1e-15)
