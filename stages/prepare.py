"""DVC stage `prepare`: split the raw data set into train / validation / test as NCHW uint8.

    python stages/prepare.py --params params.yaml --raw data/raw/mnist --out data/dataset.npz

--raw is the mnist stage's folder for dataset 'mnist', or a folder holding
SVHN format 1 (train/ and test/ with PNGs and digitStruct.mat) for 'svhn'.
The validation set is a seeded hold-out of split.val_size training images.
"""
from __future__ import annotations

import argparse

from cull import artifacts, data, params
from cull.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description="Split the raw data set into train/val/test.")
    parser.add_argument("--params", required=True, help="params file (reads dataset, split, base, svhn)")
    parser.add_argument("--raw", required=True, help="raw data folder, e.g. data/raw/mnist")
    parser.add_argument("--out", required=True, help="output .npz, e.g. data/dataset.npz")
    args = parser.parse_args()

    p = params.load(args.params, "dataset", "split", "base", "svhn")
    split = p["split"]
    arrays = data.prepare(p["dataset"], args.raw, val_size=split.val_size, train_limit=split.train_limit,
                          test_limit=split.test_limit, seed=p["base"].seed, min_side=p["svhn"].min_side)
    artifacts.save_npz(args.out, **arrays)
    print(f"prepare: {p['dataset']} train {arrays['train_x'].shape}, val {arrays['val_x'].shape}, "
          f"test {arrays['test_x'].shape} (seed {p['base'].seed}) -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
