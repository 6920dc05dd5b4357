"""Atomic artifact writers and checked readers.

Every writer writes to a temporary file beside the target and `os.replace`s it
into place, so an interrupted stage never leaves a half-written artifact.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give artifacts the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_npz(path: str | Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_npz(path: str | Path, keys: tuple[str, ...] = (), *, finite: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load every array of an .npz; raise one clear error if it is missing, corrupt or lacks `keys`.

    Every array whose name starts with one of the `finite` prefixes (adversarial
    images, say) must also hold no NaN or inf; the error names the file, the
    array and how many values are bad. Other arrays may use NaN for "none".
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing} (found {sorted(arrays)})")
    for key, values in arrays.items():
        if finite and key.startswith(finite) and values.dtype.kind in "fc":
            if not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).sum())
                raise ValueError(f"{path}: {key}: {bad} of {values.size} values are NaN or inf "
                                 "(rerun the stage that wrote it)")
    return arrays


def save_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_json_dir(path: str | Path, files: dict[str, object]) -> None:
    """A folder holding exactly `files` (name -> JSON object, written as <name>.json), replaced whole.

    The new folder is written beside `path` and renamed into place, so a reader sees the old folder or the
    new one complete, never a mix, and a file of a name no longer in `files` does not survive.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        for name, obj in files.items():
            save_json(tmp / f"{name}.json", obj)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None:
            shutil.rmtree(old)


def load_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def save_csv(path: str | Path, rows: list[dict]) -> None:
    """Write rows of equal keys as CSV with a header (DVC plot data)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)


def save_figure(path: str | Path, fig) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
