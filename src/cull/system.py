"""What this machine gives the pipeline: device, numeric types, threads, versions (`cull doctor`).

`describe` returns plain values, so a test can check them and the command can
print them; it runs nothing heavier than a CUDA query.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

from cull.params import Cw, Train
from cull.runtime import pick_device

PACKAGES = ("cull", "torch", "numpy", "scipy", "dvc", "matplotlib", "h5py", "pillow", "fonttools", "typer", "tqdm")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def describe(device_setting: str, train: Train, cw: Cw) -> dict:
    """The device that params `base.device` resolves to here, the numeric types each part uses, and versions.

    Raises the same ValueError as the stages when `device_setting` asks for CUDA that torch does not see.
    """
    device = pick_device(device_setting)
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
               "count": torch.cuda.device_count(), "bf16": bool(torch.cuda.is_bf16_supported())}
    return {
        "device": {"setting": device_setting, "resolved": device.type, "cuda_available": torch.cuda.is_available(),
                   "gpu": gpu, "cpu": cpu_model(), "cores": os.cpu_count()},
        "threads": {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "dtypes": {"training": train.precision, "cw_search": cw.precision,
                   "scores": "float64 (the score stage's log-confidences)",
                   "detection": "float64 divergences, from the float64 log-softmax of float32 logits",
                   "mkldnn_bf16": bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())},
        "versions": versions(),
    }


def lines(info: dict, prefix: str = "") -> list[str]:
    """`describe`'s dict as 'key: value' lines, nested keys joined by dots."""
    out = []
    for key, value in info.items():
        if isinstance(value, dict):
            out += lines(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}: {value}")
    return out
