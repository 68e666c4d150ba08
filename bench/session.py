"""The resolved session: options checked and turned into a device, a dataset, a degradation, prepared methods and
their cells' identities. One function builds it, for the driver and for every worker alike; every check that can
fail before a cell runs happens here, so that a typo costs seconds, not a ZSSR training."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import datasets as ds
from bench.degradations import Degradation, parse
from bench.metrics import DEFAULT_METRICS, NO_REFERENCE_METRICS, check_metric_names
from bench.options import DEFAULT_METHODS, RunOptions

PROTOCOLS = ("rgb", "y-only")
EXECUTORS = ("local", "local-gpus", "ray")


@dataclass(frozen=True)
class Session:
    options: RunOptions
    device: torch.device
    profile: str
    dataset: ds.Dataset
    degradations: tuple[Degradation, ...]
    scales: tuple[int, ...]
    metrics: tuple[str, ...]
    methods: dict  # name -> Method, precision chosen and prepared
    config_ids: dict[str, str]
    explicit: frozenset[str]  # methods the user named (their being unavailable fails the run)
    batch_size: int = 1  # BATCH resolved for the device (resolve_batch)
    all_images: tuple = ()  # the whole dataset's images (dataset.images is the --images selection): what is current
    notices: tuple[str, ...] = ()  # one-line remarks found while resolving (said in the log and on stderr)
    id: str = field(default_factory=lambda: f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")

    def degradation(self, degradation_id: str) -> Degradation:
        return next(d for d in self.degradations if d.id == degradation_id)


def config_id(name: str, method, profile: str, protocol: str, seed: int) -> str:
    """A method's part of a cell's identity: its configuration after prepare() (weights by content checksum), its
    version, the precision in force, the profile, the protocol and the seed."""
    blob = json.dumps({"m": name, "v": str(getattr(method, "version", "1")), "c": method.config(),
                       "precision": method.precision, "p": profile, "proto": protocol, "s": seed},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def resolve_profile(profile: str, device: torch.device) -> str:
    if profile == "auto":
        return "paper" if device.type == "cuda" else "quick"
    if profile not in ("quick", "paper"):
        raise ValueError(f"unknown profile {profile!r}; use auto, quick or paper")
    return profile


def _check_options(options: RunOptions) -> None:
    if not str(options.dataset).strip():
        raise ValueError("no dataset given (DATASET is empty); name one (`python -m bench list`) or give a folder")
    if options.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {options.protocol!r}; use rgb or y-only")
    if options.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {options.executor!r}; available: {', '.join(EXECUTORS)}")
    if options.time_budget is not None and (options.time_budget <= 0 or options.executor != "local"):
        raise ValueError("a time budget must be > 0 seconds and needs the local executor")
    if options.workers is not None and options.workers < 1:
        raise ValueError(f"workers must be >= 1, got {options.workers}")
    batch = str(options.batch).strip()
    if batch != "auto" and not (batch.isdigit() and int(batch) >= 1):
        raise ValueError(f"batch {options.batch!r}: give an integer >= 1 (cells trained together) or auto")


def resolve_batch(batch: str, device: torch.device) -> int:
    """BATCH for a device: an integer as given; "auto" is 1 on a CPU and a memory-bounded K on CUDA."""
    if str(batch).strip() != "auto":
        return int(batch)
    if device.type != "cuda":
        return AUTO_BATCH_CPU
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(AUTO_BATCH_MAX, int(free * 0.5 // AUTO_BATCH_BYTES_PER_PROBLEM)))


def batch_notice(batch: str, device: torch.device) -> str | None:
    """A warning for an explicit BATCH > 1 on a CPU, with the measured reason (README, "Batched ZSSR")."""
    if device.type == "cuda" or str(batch).strip() == "auto" or int(batch) <= 1:
        return None
    return (f"BATCH={int(batch)} on a CPU: batched ZSSR is slower there, not faster (measured: 6.96 s vs 3.21 s per "
            "cell with BATCH=1, held-out 96 px crops, quick profile); leave BATCH=auto (1 on a CPU) unless you are "
            "measuring it")


# BATCH=auto. CPU: 1, measured (see README, "Batched ZSSR"). CUDA: as many problems as half the free memory holds
# at ~1 GiB each (a paper-profile step of the original network needs ~0.2 GiB of activations per problem; the
# rest is headroom for the per-problem final test of up to 2k x 2k outputs), at most 16.
AUTO_BATCH_CPU = 1
AUTO_BATCH_MAX = 16
AUTO_BATCH_BYTES_PER_PROBLEM = 1 << 30


def _scales(options: RunOptions, dataset: ds.Dataset) -> tuple[int, ...]:
    scales = tuple(options.scales) or dataset.default_scales
    for s in scales:
        if isinstance(s, bool) or int(s) != s or s < 2:
            raise ValueError(f"scale {s!r}: scales are integers >= 2 (e.g. SCALES=2,3,4)")
    return tuple(dict.fromkeys(int(s) for s in scales))


def build_session(options: RunOptions, device: str | None = None, threads: int | None = None,
                  session_id: str | None = None) -> Session:
    """Check and resolve `options` (a worker passes its device, threads and the driver's session id). Raises
    ValueError (or DatasetError) with a message naming what is wrong and what to do."""
    from baselines.methods import load_plugins
    from bench.device import configure_threads, select_device
    from zssr.precision import resolve_precision

    load_plugins()
    _check_options(options)
    metrics = check_metric_names(options.metrics)
    degradations = tuple(parse(spec) for spec in options.degradation_specs())
    if len({d.id for d in degradations}) != len(degradations):
        raise ValueError("two of the degradations asked for are the same degradation")
    if options.kernel and not all(d.has_reference for d in degradations):  # none: real photos, no HR to blur
        raise ValueError(f"--kernel {options.kernel} with the degradation none: none uses the images as they are "
                         "(no HR image is blurred, and no kernel of real photos is known to tell a method); leave "
                         "--kernel out, or give the kernel as its own degradation beside none "
                         f"(--degradation kernel:{options.kernel},none)")
    configure_threads(threads)
    dev = select_device(device or options.device)
    profile = resolve_profile(options.profile, dev)
    resolve_precision(options.precision, dev)  # an unknown name, or fp16 on a CPU: an error before any cell
    whole = ds.load_dataset(options.dataset)
    dataset = ds.select_images(whole, options.images)
    if dataset.paired is not None:  # its LR images are given: that is its one degradation
        from bench.degradations import GivenDegradation

        if options.degradation_specs() != ("bicubic",):
            raise ValueError(f"dataset {dataset.name!r} gives its LR images ({dataset.paired.degradation}); "
                             "--degradation and --kernel do not apply to it, leave them out")
        degradations = (GivenDegradation.of(dataset),)
    scales = _scales(options, dataset)
    if dataset.paired is not None and scales != (dataset.paired.scale,):
        raise ValueError(f"dataset {dataset.name!r} gives LR images for x{dataset.paired.scale} only; "
                         f"--scales {','.join(map(str, scales))} does not apply")
    names = list(options.methods) or DEFAULT_METHODS[profile]
    explicit = frozenset(options.methods)
    methods = {name: _create(name, profile, options.precision, dev, explicit=name in explicit) for name in names}
    if not all(d.has_reference for d in degradations):
        check_as_is_methods(degradations, methods, explicit)
        metrics = as_is_metrics(options, metrics, methods)
    ids = {n: config_id(n, m, profile, options.protocol, options.seed) for n, m in methods.items()}
    extra = {"id": session_id} if session_id else {}
    notices = tuple(n for n in (batch_notice(options.batch, dev),) if n)
    return Session(options=options, device=dev, profile=profile, dataset=dataset, degradations=degradations,
                   scales=scales, metrics=metrics, methods=methods, config_ids=ids, explicit=explicit,
                   batch_size=resolve_batch(options.batch, dev), all_images=whole.images, notices=notices, **extra)


def check_as_is_methods(degradations, methods: dict, explicit) -> None:
    """Only the degradation none and a non-blind method the user named: it needs the true kernel of an LR image
    made from an HR one, which does not exist. Beside a synthetic degradation, such a method runs there and its
    none cells are recorded as unavailable, with the reason (bench.cellwork)."""
    if all(not d.has_reference for d in degradations):
        told = sorted(n for n, m in methods.items() if n in explicit and getattr(m, "told", ()))
        if told:
            raise ValueError(f"method(s) {', '.join(told)} need an HR image's true degradation (non-blind: told "
                             f"the {' and '.join(getattr(methods[told[0]], 'told', ()))}); the degradation none has no "
                             "HR image and no known kernel. Leave them out, or add a synthetic degradation for them "
                             "to run on (e.g. --degradation bicubic,none)")


def as_is_metrics(options: RunOptions, metrics: tuple[str, ...], methods: dict) -> tuple[str, ...]:
    """The default metrics with the no-reference ones added when a run has the degradation none (its reference
    metrics are n/a); lr-psnr-y-kernel only when a blind-kernel method runs. Metrics the user named: as named."""
    if tuple(options.metrics) != DEFAULT_METRICS:
        return metrics
    blind_kernel = any(hasattr(m, "estimate_cache") for m in methods.values())  # KernelGAN's methods
    extra = tuple(m for m in NO_REFERENCE_METRICS if m != "lr-psnr-y-kernel" or blind_kernel)
    return tuple(dict.fromkeys(metrics + extra))


def _create(name: str, profile: str, precision: str, device: torch.device, explicit: bool):
    """A method with its precision resolved for `device` and prepare()d, so that config() is complete.

    A method the user named that cannot be built or prepared (a missing or unreadable checkpoint, weights that
    cannot be fetched) is an error now. A default one is kept with the reason (`unavailable`): its cells are
    recorded as unavailable and the run goes on."""
    from baselines.api import MethodUnavailable

    try:
        method = _instantiate(name, profile, precision)
    except Exception as exc:  # an import error of an optional dependency, a broken plugin, a bad argument
        if explicit or isinstance(exc, KeyError):
            raise
        return _placeholder(name, profile, f"{type(exc).__name__}: {exc}")
    try:
        method.choose_precision(device)
        method.prepare()
    except MethodUnavailable as exc:
        if explicit:
            raise ValueError(f"method {name} cannot run: {exc}") from exc
        method.unavailable = str(exc)
    return method


def _instantiate(name: str, profile: str, precision: str):
    from baselines.methods import CHECKPOINT_PREFIX, METHODS, create_method

    if not name.startswith(CHECKPOINT_PREFIX) and name not in METHODS:
        METHODS.resolve(name)  # raises with a did-you-mean
    return create_method(name, profile=profile, precision=precision)


def _placeholder(name: str, profile: str, reason: str):
    from baselines.api import Method, MethodInfo, MethodUnavailable

    class Unavailable(Method):
        info = MethodInfo(family="unknown", training_data="unknown", degradation="unknown", notes=reason)

        def setup(self, device):
            raise MethodUnavailable(f"{name} cannot run here: {reason}")

        def config(self):
            return {"unavailable": reason}

    placeholder = Unavailable(profile=profile)
    placeholder.name = name
    return placeholder


def default_out(session: Session) -> Path:
    from bench.paths import reports_root

    from bench.paths import safe_component

    return reports_root() / safe_component(session.dataset.name) / f"{session.profile}-{session.options.protocol}"


def check_out_folder(path: Path, force: bool = False) -> Path:
    """The output folder, created; an existing file or an unwritable place is an error naming the path, and so is
    a folder that holds other things and is not a run folder of this suite (unless `force`: --force-out)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path}: is a file, not a folder; give a folder for the run's results")
    if path.is_dir() and not force and not ds.is_run_folder(path) and not (path / "results.csv").is_file():
        others = sorted(p.name for p in path.iterdir())
        if others:
            raise ValueError(f"--out {path}: the folder is not empty ({len(others)} entries, e.g. "
                             f"{', '.join(others[:3])}) and is not a run folder of this suite; give a new or empty "
                             "folder, or add --force-out to write into it anyway")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {path}: cannot write there ({exc.strerror or exc}); choose a writable folder") \
            from exc
    return path


def cell_seed(base: int, cell, seed_as: str | None = None) -> int:
    """Seed per cell, so that a result does not depend on which worker ran it or what ran before. `seed_as`: a
    method that must draw the same random numbers as another one (a variant that, told nothing, is that method)."""
    method = seed_as or cell.method
    digest = hashlib.sha1(f"{base}|{cell.dataset}|{cell.image}|{cell.scale}|{method}".encode()).hexdigest()
    return int(digest[:8], 16)
