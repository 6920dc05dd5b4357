"""Sections 5 and 6: accuracy under IGSM and C&W distortion per model and threshold (Fig. 4-6).

Section 6 ends with the random-culling control (claim C8), beyond the paper.

Also writes ``threshold_<method>.csv``, the same numbers per threshold as a DVC plot.
"""
from __future__ import annotations

from pathlib import Path

from cull.aggregate import nines
from cull.artifacts import save_csv
from cull.plots import figures
from cull.report.inputs import METHODS, Inputs, Model, _get
from cull.report.markdown import DASH, _figure, _missing, _not_run, _num, _pct, _table, mean
from cull.report.paper import PAPER_CW0_L2, PAPER_IGSM5


def _attacked(inp: Inputs) -> list[Model]:
    ordered = [inp.unsanitized, *sorted(inp.sanitized, key=lambda m: (m.method, m.threshold))]
    return [m for m in ordered if m.attacks]


def _keys(models: list[Model], attack: str) -> list[str]:
    """Setting keys ("5", "0.1") found in any model's attack metrics, in numeric order."""
    keys = {k for m in models for k in (_get(m.attacks, attack) or {})}
    return sorted(keys, key=float)


def _point(s, scale: float):
    if s is None or s["mean"] is None:
        return None
    lo, hi = (s["lo"], s["hi"]) if s["lo"] is not None else (s["mean"], s["mean"])
    return scale * s["mean"], scale * lo, scale * hi


def _threshold_series(inp: Inputs, attack: str, value, *, scale: float = 1.0) -> dict:
    """{panel: {series: {threshold: value}}} for Fig. 4-6; the unsanitized model is threshold 0 in every panel.

    `value` maps one setting's metrics ({"acc"}, {"success_rate", "mean_l2"} or None) to a Stat or None;
    each point becomes (mean, lo, hi) scaled by `scale`, drawn with its 95% interval as an error bar.
    """
    models = _attacked(inp)
    panels = {}
    for method in METHODS:
        members = [m for m in models if m.method in (None, method)]
        if not any(m.method == method for m in members):
            continue
        series = {}
        for k in _keys(models, attack):
            points = {m.threshold: _point(value(_get(m.attacks, attack, k)), scale) for m in members}
            label = f"{k} iterations" if attack == "igsm" else f"κ = {k}"
            series[label] = {t: v for t, v in points.items() if v is not None}
        panels[f"{method} sanitization"] = series
    return panels


def _threshold_csvs(inp: Inputs, out: Path) -> None:
    """report/threshold_<method>.csv: one row per attacked model (threshold 0 = unsanitized), for `dvc plots`."""
    models = _attacked(inp)
    igsm, cw = _keys(models, "igsm"), _keys(models, "cw")
    for method in METHODS:
        rows = []
        for m in (m for m in models if m.method in (None, method)):
            row = {"threshold": m.threshold, "nines": nines(m.threshold), "model": m.name,
                   "train_size": mean(_get(m.train, "train_size")), "test_acc": mean(_get(m.train, "test_acc"))}
            for k in igsm:
                s = _get(m.attacks, "igsm", k, "acc")
                row |= {f"igsm_{k}": mean(s), f"igsm_{k}_lo": s["lo"], f"igsm_{k}_hi": s["hi"]}
            for k in cw:
                s, key = _get(m.attacks, "cw", k, "mean_l2"), f"cw_l2_k{k.replace('.', 'p')}"
                row |= {key: mean(s), f"{key}_lo": s["lo"], f"{key}_hi": s["hi"]}
            rows.append(row)
        save_csv(out / f"threshold_{method}.csv", rows)


def _paper_points(series: dict, paper: dict, label: str) -> None:
    """Add the paper's points (model key -> value) to each panel of `series` as a reference line `label`."""
    for key, value in paper.items():
        for panel in series:
            if key is None or panel.startswith(key[0]):
                series[panel].setdefault(label, {})[0.0 if key is None else key[1]] = value


def _no_attacks(inp: Inputs) -> str:
    return _missing(inp.unsanitized.files + "/attack.json", inp.sanitized[0].files + "/attack.json")


def _igsm(inp: Inputs, figdir: Path) -> str:
    out = ["## 5. Robustness to IGSM (Fig. 4)"]
    models = _attacked(inp)
    if not models:
        return "\n\n".join(out + [_no_attacks(inp)])
    keys = _keys(models, "igsm")
    rows = [[m.label, _num(_get(m.train, "train_size"), ".6g", n=False),
             _pct(_get(m.train, "test_acc")), _pct(_get(m.attacks, "clean_acc"))]
            + [_pct(_get(m.attacks, "igsm", k, "acc")) for k in keys] for m in models]
    p = inp.params["igsm"]
    out.append(f"Accuracy (%) on IGSM examples, eps = {p.eps}, step {p.alpha}, "
               f"{_get(models[0].attacks, 'n_igsm')} test images per model and seed; mean [95% Wilson interval] "
               "(n = images over all seeds).")
    header = ["model", "train size", "test acc", "clean acc (attacked images)"] + [f"IGSM {k}" for k in keys]
    out.append(_table(header, rows))
    series = _threshold_series(inp, "igsm", lambda r: None if r is None else r["acc"], scale=100.0)
    if inp.dataset == "mnist":
        _paper_points(series, PAPER_IGSM5, "paper, 5 iterations")
    fig = figures.threshold_lines(series, ylabel="accuracy on IGSM examples (%)",
                                  title="IGSM accuracy vs sanitization threshold (paper Fig. 4)")
    out.append(_figure(figdir, "igsm_vs_threshold.png", fig, "Accuracy on IGSM examples vs sanitization "
                       "threshold; threshold 0 is the unsanitized model (paper Fig. 4)."))
    missing = [m.label for m in inp.sanitized if m.attacks is None]
    if missing:
        out.append(_not_run("attacks on " + ", ".join(missing)))
    out += ["### The IGSM step size, calibrated"] + _alpha(inp, figdir)
    return "\n\n".join(out)


def _alpha(inp: Inputs, figdir: Path) -> list[str]:
    """The step-size sweep on the unsanitized models, the calibrated alpha, and Fig. 4 at it and at the reference."""
    alpha = inp.agg["alpha"]
    sweep = alpha["sweep"]
    calibrated, eps = sweep["calibrated"], sweep["eps"]
    step = calibrated["alpha"]  # a Stat over seeds: each seed is calibrated on its own unsanitized model
    keys = sorted({k for acc in sweep["acc"].values() for k in acc}, key=float)
    grid = sorted(sweep["acc"], key=float)
    per_seed = ", ".join(f"{a:.4f}" for a in step["per_seed"] if a is not None)
    out = [f"The paper gives IGSM's iteration counts but neither eps nor the step size. The report's IGSM above "
           f"uses step {inp.params['igsm'].alpha}. Here the step is calibrated on a number the paper reports about "
           f"its set-up: the *unsanitized* model's IGSM-5 accuracy, {100 * calibrated['target_accuracy']:g}% (Fig. 4). "
           f"The unsanitized model of each seed is attacked at every step of params `alpha.alphas` "
           f"(eps = {eps}, {sweep['n_images']} test images per seed); its calibrated step is where its IGSM-5 "
           f"accuracy crosses the target, interpolated linearly between the two neighbouring steps: "
           f"**{_num(step, '.4f', n=False)}** (mean [95% t interval] over seeds; per seed {per_seed}). Each seed's "
           f"sanitized models are then measured at that seed's step, and at cleverhans' default step "
           f"{calibrated['reference']:g}; nothing about them is tuned.",
           "Accuracy (%) of the unsanitized model, mean [95% Wilson interval] (n = images over all seeds):",
           _table(["step size"] + [f"IGSM {k}" for k in keys],
                  [[a] + [_pct(_get(sweep, "acc", a, k)) for k in keys] for a in grid])]
    series = {f"{k} iterations": {float(a): _point(_get(sweep, "acc", a, k), 100.0) for a in grid} for k in keys}
    fig = figures.alpha_sweep(series, target=100 * calibrated["target_accuracy"], calibrated=mean(step),
                              reference=calibrated["reference"])
    out.append(_figure(figdir, "igsm_alpha_sweep.png", fig, "Unsanitized model: accuracy on IGSM examples vs the "
                       "step size, one line per iteration count; the calibrated and the reference step are marked."))
    by_name = {m.name: m for m in inp.sanitized}
    models = [inp.unsanitized] + [by_name[name] for name in alpha["models"]]
    diffs = inp.agg["effects"]["alpha_vs_unsanitized"]
    rows = []
    for m in models:
        paper = PAPER_IGSM5.get(None if m.method is None else (m.method, m.threshold)) if inp.dataset == "mnist" \
            else None
        for setting in ("calibrated", "reference"):
            r = _get(m.igsm_alpha, setting)
            label = f"{setting} ({mean(_get(r, 'alpha')):.4f})"
            cells = [_pct(_get(r, "acc", k)) for k in keys]
            diff = _num(_get(diffs, m.name, setting, "5"), "+.3f") if m.name in diffs else DASH
            rows.append([m.label, label, _num(paper, ".1f", n=False)] + cells + [diff])
    out.append("Fig. 4 at both steps: accuracy (%), mean [95% Wilson interval] (n = images over all seeds); the "
               "last column is the IGSM-5 accuracy minus the unsanitized model's, paired by seed (as a fraction, "
               "t 95%).")
    out.append(_table(["model", "step", "paper IGSM 5 %"] + [f"IGSM {k}" for k in keys]
                      + ["IGSM 5 − unsanitized"], rows))
    return out


def _cw(inp: Inputs, figdir: Path) -> str:
    number = "Fig. 5" if inp.dataset == "mnist" else "Fig. 6"
    out = [f"## 6. Carlini & Wagner distortion ({number})"]
    models = _attacked(inp)
    if not models:
        return "\n\n".join(out + [_no_attacks(inp)])
    keys = _keys(models, "cw")

    def cell(m, k):
        r = _get(m.attacks, "cw", k)
        if r is None:
            return DASH
        return f"{_num(r['mean_l2'], '.3f')}; success {_pct(r['success_rate'], n=False)}%"

    out.append(f"Mean L2 of successful targeted C&W examples [95% bootstrap interval] (n = successful examples "
               f"over all seeds); success rate [Wilson interval], {_get(models[0].attacks, 'n_cw')} source "
               f"image(s) × 9 targets per model and seed.")
    rows = [[m.label] + [cell(m, k) for k in keys] for m in models]
    out.append(_table(["model"] + [f"κ = {k}" for k in keys], rows))
    series = _threshold_series(inp, "cw", lambda r: _get(r, "mean_l2"))
    if inp.dataset == "mnist":
        _paper_points(series, PAPER_CW0_L2, "paper, κ = 0")
    fig = figures.threshold_lines(series, ylabel="mean L2 distortion",
                                  title=f"C&W distortion vs sanitization threshold (paper {number})")
    out.append(_figure(figdir, "cw_l2_vs_threshold.png", fig,
                       f"Mean L2 of C&W examples vs sanitization threshold, one line per κ (paper {number})."))
    out += ["### Control: random culling"] + _random_control(inp)
    return "\n\n".join(out)


def _random_control(inp: Inputs) -> list[str]:
    """Claim C8's control: each random row beside the sanitized row it mirrors, and their paired differences."""
    diffs = inp.agg["effects"].get("vs_random") or {}
    if not diffs:
        return [_not_run("the model table has no random row (a row with method: random, like: <row>)")]
    by_name = {m.name: m for m in inp.sanitized}
    rows = []
    for name, d in diffs.items():
        control, mirrored = by_name[name], by_name[d["mirrors"]]
        for what, side, difference, fmt in (
            ("IGSM-5 accuracy %", lambda m: _get(m.attacks, "igsm", "5", "acc"), _get(d, "igsm_acc", "5"), _pct),
            ("C&W κ = 0 mean L2", lambda m: _get(m.attacks, "cw", "0", "mean_l2"), _get(d, "cw_l2", "0"),
             lambda s: _num(s, ".3f")),
            ("KL ROC-AUC, IGSM 5", lambda m: _get(m.detect, "igsm", "5", "auc"), _get(d, "auc", "igsm", "5"),
             lambda s: _num(s, ".3f")),
        ):
            cells = [fmt(side(mirrored)), fmt(side(control)), _num(difference, "+.3f")]
            rows.append([f"{mirrored.label} vs {control.label}", what] + cells)
    overlap = [f"{by_name[name].label}: {_pct(_get(by_name[name].filter, 'overlap'), n=False)}% of its images are in "
               f"the mirrored set" for name in diffs]
    return [f"Beyond the paper, a control (claim C8): does sanitization help because it removes *outliers*, or "
            f"because the model trains on less data? A random row trains, with the same seeds, on a random subset "
            f"with the same size and class counts as the sanitized set it mirrors. The difference is paired by seed "
            f"(sanitized − random; IGSM accuracy as a fraction). {'; '.join(overlap)}.",
            _table(["models", "number", "sanitized", "random", "difference [t 95%]"], rows)]
