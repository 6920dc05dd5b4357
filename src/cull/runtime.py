"""Seeding and device choice, done once per process."""
from __future__ import annotations

import os
import random

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


def run_stage(main) -> None:
    """Run a stage's `main`; turn cull's input errors into one line and exit 1.

    Set CULL_DEBUG=1 to see the full traceback instead.
    """
    import sys

    try:
        main()
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        if os.environ.get("CULL_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
