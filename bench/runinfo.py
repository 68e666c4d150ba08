"""run.json: everything needed to reproduce a run and to render its report without importing models."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from bench.protocol import PROTOCOL_TEXT
from bench.paths import REPO_ROOT
from bench.metrics import METRIC_TABLE

PACKAGES = ["torch", "torchvision", "numpy", "basicsr-fixed", "basicsr", "lpips", "spandrel", "scikit-image",
            "opencv-python-headless", "pandas", "matplotlib", "pillow", "zssr-bench"]


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + ("-dirty" if dirty else "")) if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_run_json(out: Path, session, finished: bool, timing: dict | None = None) -> None:
    from bench.device import device_name

    options, dataset, methods, ids = session.options, session.dataset, session.methods, session.config_ids
    path = out / "run.json"
    try:
        previous = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        previous = {}
    degradations = session.degradations
    info = {
        "git_revision": git_revision(),
        "packages": package_versions(),
        "device": {"type": session.device.type, "name": device_name(session.device)},
        "dataset": {"name": dataset.name, "version": dataset.version, "n_images": len(dataset.images),
                    "categories": dataset.categories, "source": dataset.source, "licence": dataset.licence,
                    "skipped_files": list(dataset.skipped), "notes": list(getattr(dataset, "notes", ()))},
        "degradations": [{"id": d.id, "spec": d.spec, "description": d.description} for d in degradations],
        # who saw what: blind methods the LR image only; non-blind ones also the parts of the truth they ask for
        "methods_told": {n: (f"the LR image and the degradation's true {' and '.join(m.told)} (non-blind)"
                             if getattr(m, "told", ()) else "the LR image only (blind)") for n, m in methods.items()},
        "profile": session.profile,
        "protocol": options.protocol,
        "protocol_text": PROTOCOL_TEXT[options.protocol]
        + "".join(f" Degradation {d.id}: {d.description}." for d in degradations if d.id != "bicubic"),
        "seed": options.seed,
        "scales": list(session.scales),
        "metrics_requested": list(session.metrics),
        "methods": {n: {"config": m.config(), "precision": m.precision, "config_id": ids.get(n),
                        "version": str(getattr(m, "version", "1")), "unavailable": m.unavailable,
                        "weights_source": {f"x{k}": v for k, v in sorted(getattr(m, "sources", {}).items())},
                        "info": dataclasses.asdict(m.info), "class": type(m).__name__}
                    for n, m in methods.items()},
        # every configuration that has written rows into this folder, so that a report can tell apart the cells
        # of one method run at two precisions (or other settings) in the same folder
        "config_ids": {**previous.get("config_ids", {}),
                       **{cid: {"method": n, "precision": methods[n].precision} for n, cid in ids.items()}},
        "metrics": {k: v.to_json() for k, v in METRIC_TABLE.items()},
        "options": options.as_dict(),
        "session": session.id,
        "started": previous.get("started") if previous.get("started") and options.resume else _now(),
        "finished": _now() if finished else None,
        "command": " ".join(sys.argv),
        "threads": __import__("torch").get_num_threads(),
    }
    history = previous.get("sessions", [])
    if finished:
        history = history + [{"id": session.id, "finished": info["finished"], "git_revision": info["git_revision"],
                              **(timing or {})}]
    info["sessions"] = history
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp, path)
