"""The one way a name (of an image, category, method, dataset, degradation or checkpoint) becomes part of a path,
and the checks that a path read from a file stays inside its folder. Standard library only: the report imports it
without any model code."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
MARK = "~"  # never in a name kept as it is, so a rewritten name cannot equal a kept one


def safe_component(name) -> str:
    """`name` as one path component that stays where it is put: a name of ASCII letters, digits, `.`, `_` and `-`
    (not starting with `.` or `-`, at most 100 characters) is kept as it is; any other name (a separator, `..`,
    a space, a colon, non-ASCII, empty) becomes its safe characters plus `~` and a digest of the whole name. Two
    different names therefore never share a component (up to a 48-bit digest), and the same name always gets the
    same one."""
    text = str(name)
    if _SAFE.fullmatch(text) and ".." not in text:
        return text
    readable = _UNSAFE_RUN.sub("-", text).replace("..", "-").strip(".-")[:60]
    return f"{readable}{MARK}{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def unique_names(keys, name_of) -> dict:
    """{key: file name} with every name distinct: `name_of(key)` where that is unique, else the clashing names
    disambiguated by a digest of their key (deterministic: the same keys give the same names)."""
    keys = list(dict.fromkeys(keys))
    names = {k: name_of(k) for k in keys}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    taken = {n for n, c in counts.items() if c == 1}
    for k in keys:
        if counts[names[k]] > 1:
            stem, dot, suffix = names[k].rpartition(".") if "." in names[k] else (names[k], "", "")
            digest = hashlib.sha256(repr(k).encode()).hexdigest()
            for width in range(8, len(digest) + 1, 4):
                candidate = f"{stem}{MARK}{digest[:width]}{dot}{suffix}"
                if candidate not in taken:
                    break
            names[k] = candidate
            taken.add(candidate)
    return names


def inside(root: Path, relative: str | Path) -> Path:
    """`root / relative`, refusing a relative path that is absolute, empty or climbs out with `..` (a name from a
    dataset file or a results table must not reach outside the folder it is read from or written to)."""
    rel = Path(relative)
    if not str(relative).strip() or rel.is_absolute() or ".." in rel.parts or rel.drive:
        raise ValueError(f"{str(relative)!r}: not a relative path inside {root}; give a path without a leading / "
                         "and without ..")
    return Path(root) / rel


def is_within(path: Path, root: Path) -> bool:
    """Whether `path` (symlinks resolved) lies inside `root`."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False
