"""Sections that show pictures: 4. class composition (Fig. 11), 8. training curves,
9. example adversarial images, 10. the font preview."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cull.artifacts import atomic_path, load_npz
from cull.plots import figures
from cull.report.inputs import METHODS, Inputs
from cull.report.markdown import _figure, _missing, _not_run, _num, _table


def _composition(inp: Inputs, figdir: Path) -> str:
    out = ["## 4. Class composition (Fig. 11)"]
    fig = figures.composition({m: inp.tables.get(m) for m in METHODS})
    caption = ("Share of each digit among the kept training images, per threshold, mean over seeds with its "
               "95% t band (paper Fig. 11).")
    out.append(_figure(figdir, "class_composition.png", fig, caption))
    conf = inp.tables.get("mean_confidence") or {}
    methods = [m for m in METHODS if conf.get(m)]
    if methods:
        rows = [[str(c)] + [_num(conf[m][c], ".3f", n=False) for m in methods] for c in range(len(conf[methods[0]]))]
        out.append("Mean confidence of each digit's training images under each scoring model (the canonical font "
                   "model, the unsanitized model), mean [95% t interval] over seeds. A class with a low mean loses "
                   "most of its images at every threshold; the paper's Fig. 11a shows its canonical 8s falling.")
        out.append(_table(["digit"] + [f"{m} model" for m in methods], rows))
    return "\n\n".join(out)


def _curves(inp: Inputs, figdir: Path) -> str:
    curves = {"canonical (fonts)": inp.canonical["curve"], "unsanitized": inp.unsanitized.curve}
    curves |= {m.label: m.curve for m in inp.sanitized}
    out = ["## 8. Training curves"]
    if not any(curves.values()):
        return "\n\n".join(out + [_not_run("no training curve in metrics/aggregate.json")])
    out.append(_figure(figdir, "training_curves.png", figures.training_curves(curves),
                       "Loss and accuracy per epoch of every trained model, mean over seeds with its 95% t band."))
    missing = [name for name, rows in curves.items() if rows is None]
    if missing:
        out.append(_not_run("no curve for " + ", ".join(missing)))
    return "\n\n".join(out)


def _grid(inp: Inputs, figdir: Path) -> str:
    out = ["## 9. Example adversarial images"]
    if not inp.attacks_npz.is_file():
        return "\n\n".join(out + [_missing(inp.attacks_npz)])
    attacks = load_npz(inp.attacks_npz, ("cw_adv", "cw_source", "cw_target", "cw_kappa", "cw_success"))
    kind = inp.params["detect"].divergence
    divergence, note = None, f"{inp.detect_npz} is missing, so no divergence is shown"
    if inp.detect_npz.is_file():
        scores = load_npz(inp.detect_npz)
        key, aligned = f"cw_{kind}", True
        if "cw_kappa" in scores:
            aligned = np.array_equal(np.asarray(scores["cw_kappa"], float), np.asarray(attacks["cw_kappa"], float))
        if key in scores and len(scores[key]) == len(attacks["cw_adv"]) and aligned:
            divergence, note = scores[key], f"`div` is the {kind} divergence the detector scores"
        else:
            note = f"{inp.detect_npz} has no {key} array matching the attack rows (has {sorted(scores)[:12]})"
    cells, cols = figures.grid_cells(attacks, divergence)
    fig = figures.image_grid(cells, col_titles=cols, title=f"C&W examples on the {inp.sanitized[0].label} model, "
                             f"seed {inp.seeds[0]}")
    out.append(_figure(figdir, "adversarial_grid.png", fig, "Targeted C&W examples on the headline sanitized model "
                       f"(seed {inp.seeds[0]}), source→target per cell; {note}."))
    return "\n\n".join(out)


def _fonts(inp: Inputs, figdir: Path) -> str:
    out = ["## 10. Canonical examples (fonts)"]
    if not inp.fonts_preview.is_file():
        return "\n\n".join(out + [_missing(inp.fonts_preview)])
    with atomic_path(figdir / "fonts_preview.png") as tmp:
        tmp.write_bytes(inp.fonts_preview.read_bytes())
    return "\n\n".join(out + ["![font preview](figures/fonts_preview.png)\n\n"
                              "_Rendered font digits the canonical model is trained on (paper §3.2)._"])
