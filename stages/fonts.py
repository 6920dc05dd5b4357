"""Stage fonts: render the digits of the system fonts as canonical examples (paper §3.2).

    python stages/fonts.py --params params.yaml --out data/fonts.npz \
        --preview data/fonts_preview.png --metrics metrics/fonts.json

Reads params `fonts.*` and `base.seed`. Writes the images (cull.fonts.build_font_set
describes the arrays), a preview grid and the selection counts. The 80/20
train/test split is left to the training stage.
"""
from __future__ import annotations

import argparse
import sys
import time

from cull import fonts, params
from cull.artifacts import save_figure, save_json, save_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="fonts .npz")
    parser.add_argument("--preview", required=True, help="preview grid .png")
    parser.add_argument("--metrics", required=True, help="selection counts .json")
    args = parser.parse_args()

    start = time.perf_counter()
    try:
        p = params.load(args.params, "fonts", "base")
        cfg = p["fonts"]
        arrays, summary = fonts.build_font_set(
            cfg.dirs, sizes=cfg.sizes, angles=cfg.angles, deny=cfg.deny,
            min_legibility=cfg.min_legibility, max_faces=cfg.max_faces, panose_families=cfg.panose_families,
            exclude_ibm_classes=cfg.exclude_ibm_classes, monospace=cfg.monospace, box=cfg.box, stroke=cfg.stroke,
            seed=p["base"].seed)
    except (params.ParamsError, FileNotFoundError, ValueError) as e:
        sys.exit(f"fonts: {e}")
    save_npz(args.out, **arrays)
    save_figure(args.preview, fonts.preview(arrays))
    save_json(args.metrics, summary)
    dropped = ", ".join(f"{k[8:]} {v}" for k, v in summary.items() if k.startswith("dropped_") and v)
    print(f"fonts: {summary['faces_found']} faces found, {summary['faces_kept']} kept "
          f"(dropped: {dropped or 'none'}); {summary['images']} images, "
          f"{summary['scaled_down']} scaled down; {time.perf_counter() - start:.0f}s -> {args.out}")


if __name__ == "__main__":
    main()
