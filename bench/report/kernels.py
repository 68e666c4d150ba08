"""Estimated blur kernels next to the true ones: one figure per (dataset, degradation, scale) where a blind method
saved its estimates, and the kernel-accuracy numbers behind it.

Accuracy (zssr.kernel_math.kernel_error): the relative L2 error of a kernel against the true one, both centred, so that
offsets (which ZSSR removes anyway) do not count. The bicubic kernel's error is shown as the reference a blind
method must beat: it is what a method that assumes bicubic uses.

Decisions: what each blind cell did with its estimate (its kernel-decision row, baselines.kernel_decision: use it,
re-estimate with another seed (version 3), or fall back to bicubic) and why (the row's note), per cell and counted
per method.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.load import RunData
from bench.report.plots import slug
from bench.results import Cell, estimated_kernel_path, kernel_path

MAX_IMAGES = 12  # rows of one figure


@dataclass
class KernelFigure:
    dataset: str
    degradation: str
    scale: int
    path: Path | None
    methods: list[str]
    # per method (and "bicubic kernel"): mean kernel error over the images with a true kernel, and their count
    errors: dict[str, tuple[float, int]] = field(default_factory=dict)
    # per cell with a kernel-decision row: image, method, decision (use / re-estimate / bicubic), reason
    decisions: list[dict[str, str]] = field(default_factory=list)
    # per method: decision -> number of cells
    decision_counts: dict[str, dict[str, int]] = field(default_factory=dict)


def read_kernel(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(str(path))["Kernel"], dtype=np.float64)
    except Exception:  # an unreadable side file is shown as missing, never fatal for the report
        return None


def _true_kernel(run_dir: Path, cell: Cell) -> np.ndarray | None:
    if cell.degradation.split("+")[0] == "bicubic":
        from zssr.kernel_math import bicubic_kernel

        return bicubic_kernel(cell.scale)
    return read_kernel(run_dir / kernel_path(cell))


def cell_decisions(data: RunData, dataset: str, degradation: str, scale: int) -> list[dict[str, str]]:
    """The kernel-decision rows of one (dataset, degradation, scale): image, method, decision, reason (the note
    without the decision's name, which the value gives), sorted by image and method."""
    from baselines.kernel_decision import DECISION_CODES

    names = {code: name for name, code in DECISION_CODES.items()}
    rows = data.rows
    if not len(rows):
        return []
    picked = rows[(rows["metric"] == "kernel-decision") & (rows["dataset"] == dataset)
                  & (rows["degradation"] == degradation) & (rows["scale"].astype(int) == int(scale))]
    out = []
    for r in picked.itertuples():
        value = pd.to_numeric(r.value, errors="coerce")
        name = names.get(int(value), "unknown") if np.isfinite(value) else "unknown"
        note = str(r.note or "")
        out.append({"image": r.image, "method": r.method, "decision": name,
                    "reason": note[len(name) + 2:] if note.startswith(name + ": ") else note})
    return sorted(out, key=lambda d: (d["image"], d["method"]))


def render_kernels(data: RunData, out_dir: Path, max_images: int = MAX_IMAGES) -> list[KernelFigure]:
    from zssr.kernel_math import bicubic_kernel, kernel_error

    figures: list[KernelFigure] = []
    cells = data.cells
    if not len(cells):
        return figures
    for (dataset, degradation, scale), group in cells.groupby(["dataset", "degradation", "scale"], sort=True):
        scale = int(scale)
        decisions = cell_decisions(data, dataset, degradation, scale)
        counts: dict[str, dict[str, int]] = {}
        for d in decisions:
            per = counts.setdefault(d["method"], {})
            per[d["decision"]] = per.get(d["decision"], 0) + 1
        found: dict[str, dict[str, np.ndarray]] = {}  # image -> method -> estimated kernel
        truth: dict[str, np.ndarray | None] = {}
        for r in group.itertuples():
            cell = Cell(r.dataset, r.category, r.image, r.image_sha, r.degradation, scale, r.method, r.config_id)
            est = read_kernel(data.run_dir / estimated_kernel_path(cell))
            if est is None:
                continue
            found.setdefault(r.image, {})[r.method] = est
            if r.image not in truth:
                truth[r.image] = _true_kernel(data.run_dir, cell)
        if not found:
            continue
        methods = sorted({m for per in found.values() for m in per})
        # image -> method (and "bicubic kernel") -> error, for the images with a true kernel
        errors = {image: {**{m: kernel_error(k, truth[image]) for m, k in per.items()},
                          "bicubic kernel": kernel_error(bicubic_kernel(scale), truth[image])}
                  for image, per in found.items() if truth.get(image) is not None}
        summary = {}
        for m in methods + ["bicubic kernel"]:
            values = [per[m] for per in errors.values() if m in per]
            if values:
                summary[m] = (float(np.mean(values)), len(values))
        images = sorted(found)[:max_images]
        path = out_dir / f"kernels_{slug(dataset)}_x{scale}_{slug(degradation)}.png"
        labels = {(d["image"], d["method"]): d["decision"] for d in decisions}
        _plot(images, methods, found, truth, errors, labels, path,
              f"{dataset} ×{scale} [{degradation}]: true and estimated kernels")
        figures.append(KernelFigure(dataset, degradation, scale, path, methods, summary, decisions, counts))
    return figures


def _plot(images, methods, found, truth, errors, decisions, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zssr.kernel_math import centred

    columns = ["true"] + methods
    fig, axes = plt.subplots(len(images), len(columns), figsize=(1.9 * len(columns), 1.9 * len(images) + 0.5),
                             squeeze=False)
    for i, image in enumerate(images):
        for j, name in enumerate(columns):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            k = truth.get(image) if name == "true" else found[image].get(name)
            if k is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
            else:
                view = centred(k)
                mid = view.shape[0] // 2
                ax.imshow(view[mid - 8:mid + 9, mid - 8:mid + 9], cmap="magma", interpolation="nearest")
            label = name if i == 0 else ""
            if name in errors.get(image, {}):
                label += ("\n" if label else "") + f"error {errors[image][name]:.2f}"
            if (image, name) in decisions:  # what the cell did with this estimate
                label += ("\n" if label else "") + decisions[(image, name)]
            ax.set_title(label, fontsize=7)
            if j == 0:
                ax.set_ylabel(image, fontsize=7)
    height = fig.get_size_inches()[1]
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / height)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / height))  # room for the title above the first row's labels
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
