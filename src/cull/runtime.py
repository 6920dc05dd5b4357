"""Seeding and device choice, done once per process."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    # cuBLAS needs this set before its first call to be deterministic on CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def pick_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; 'cuda' without a GPU is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("base.device: 'cuda' was asked for but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"base.device: expected auto, cpu or cuda, got {name!r}")
    return torch.device(name)


# Options whose value is a file or folder a stage writes; a stage start removes stale temp files beside them.
OUTPUT_OPTIONS = ("--out", "--metrics", "--curve", "--cdf", "--preview")
EXPECTED_ERRORS = (ValueError, OSError)  # cull's input errors: ValueError (incl. ParamsError), missing/unreadable files


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """One line per warning, without the source path that Python's default format adds."""
    import sys

    print(f"warning: {message}", file=file or sys.stderr)


def stale_temps(path: str | Path) -> list[Path]:
    """Temp files that `cull.artifacts.atomic_path` leaves when killed (-9): beside `path`, or inside it."""
    path = Path(path)
    found = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    if path.is_dir():
        found += list(path.rglob(".*.tmp"))
    return found


def clean_stale_temps(argv: list[str]) -> int:
    """Remove stale temp files of the outputs named in `argv` (`OUTPUT_OPTIONS`); return how many."""
    removed = 0
    for i, arg in enumerate(argv[:-1]):
        if arg in OUTPUT_OPTIONS:
            for tmp in stale_temps(argv[i + 1]):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_stage(main) -> None:
    """Run a stage's `main` as a user expects a command to behave.

    - Removes stale temp files that a killed run left beside its outputs.
    - cull's input errors become one line, ``error: <file or param>: <what is wrong>``, and exit 1.
    - Ctrl-C and SIGTERM become ``interrupted: <stage>; nothing written`` and exit 130; the
      temp file being written is removed on the way out (`cull.artifacts.atomic_path`), and
      every finished output was renamed into place whole.
    - Warnings print as one ``warning: ...`` line.

    Set CULL_DEBUG=1 to see the full traceback instead.
    """
    import signal
    import sys
    import warnings

    stage = Path(sys.argv[0]).stem
    warnings.showwarning = _warning_line
    signal.signal(signal.SIGTERM, _raise_interrupt)
    clean_stale_temps(sys.argv[1:])
    try:
        main()
    except KeyboardInterrupt:
        if os.environ.get("CULL_DEBUG"):
            raise
        print(f"interrupted: {stage}; nothing written", file=sys.stderr)
        sys.exit(130)
    except EXPECTED_ERRORS as e:
        if os.environ.get("CULL_DEBUG"):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(1)


def one_line(error: BaseException) -> str:
    """An error's message on one line; an OSError without cull's wording names its file."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    return " ".join(str(error).split())
