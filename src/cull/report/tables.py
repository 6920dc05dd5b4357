"""The report's opening and its table sections: 1. run context, 2. headline numbers,
3. sanitized training-set size (Tables 1-3) and the retention curve behind the epoch count."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
from pathlib import Path

from cull.plots import figures
from cull.plots.figures import threshold_label
from cull.report.gaps import Gap, _compare
from cull.report.inputs import Inputs, _by_float, _get
from cull.report.markdown import DASH, _figure, _missing, _not_run, _num, _pct, _table
from cull.report.paper import (
    PAPER_CANONICAL,
    PAPER_CW0_L2,
    PAPER_FONTS,
    PAPER_IGSM5,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
    PAPER_TRAIN_SIZE,
    PAPER_UNSANITIZED_ACC,
)


def _intro(inp: Inputs) -> str:
    head = inp.sanitized[0]
    extra = ", ".join(m.label for m in inp.sanitized[1:]) or "none"
    return (
        "# Less is More — reproduction report\n\n"
        f"Dataset **{inp.dataset}**; headline sanitized model **{head.label}**; further sanitized models: {extra}; "
        f"seeds {', '.join(map(str, inp.seeds))} (every model trained once per seed).\n\n"
        "\"Paper\" numbers are typed in from Liu, Chen and Chen (2018) and kept in one constant block of "
        "`cull.report`; every \"ours\" number is read from `metrics/aggregate.json` and printed as "
        "mean [95% interval] (n): n counts the examples pooled over all seeds for a rate or a mean distortion, "
        "and the seeds for an across-seed statistic (τ, AUC, TPR at FPR, set sizes). Accuracies and rates are "
        "percentages. Numbers differ between CPUs (different kernels) within these intervals."
    )


def _versions() -> list[list[str]]:
    rows = [["python", platform.python_version()]]
    for name in ("torch", "numpy", "dvc", "matplotlib"):
        try:
            rows.append([name, importlib.metadata.version(name)])
        except importlib.metadata.PackageNotFoundError:
            rows.append([name, "not installed"])
    return rows


def _device(setting: str) -> str:
    import torch  # imported here: only this line of the report needs it

    seen = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU only"
    return f"base.device = {setting}; the report stage sees {seen}"


def _flat(obj, prefix: str = "") -> list[list[str]]:
    """Rows (key, value) of a nested JSON object; lists shown by length and first entries."""
    rows = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flat(value, name + ".")
        elif isinstance(value, list):
            shown = ", ".join(map(str, value[:5])) + (", …" if len(value) > 5 else "")
            rows.append([name, f"{len(value)} item(s)" + (f": {shown}" if value else "")])
        else:
            rows.append([name, str(value)])
    return rows


def _run_context(inp: Inputs, gaps: list[Gap]) -> str:
    p = inp.params
    can = inp.canonical
    rows = [
        ["dataset", inp.dataset],
        ["model seeds (seeds)", ", ".join(map(str, inp.seeds))],
        ["data seed: validation split, font faces (base.seed)", p["base"].seed],
        ["training pool (our images scored for sanitization)", inp.tables["total"]],
        ["paper's training set", PAPER_TRAIN_SIZE[inp.dataset]],
        ["validation split held out of the pool (split.val_size)", p["split"].val_size],
        ["canonical (font) model: train / hold-out renders",
         f"{can.get('train_size', DASH)} / {can.get('holdout_size', DASH)}"],
        ["epochs: classifiers / canonical model", f"{p['train'].epochs} / {p['train'].canonical_epochs}"],
        ["device", _device(p["base"].device)],
        *_versions(),
    ]
    # No dates, commits or timings here: the same params and seed give the same report.
    # Stage times are measured by benchmarks/.
    out = ["## 1. Run context", _table(["", ""], rows)]
    out.append("### Fonts (metrics/fonts.json)")
    if inp.fonts is None:
        out.append(_missing(inp.metrics / "fonts.json"))
    else:
        out.append(_table(["key", "value"], _flat(inp.fonts)))
        out.append(f"Paper §3.2: {PAPER_FONTS['faces_kept']} faces (Windows 10, after dropping 9 hard-to-read ones) "
                   f"× 3 sizes × 7 angles × 10 digits = {PAPER_FONTS['images']} images.")
        for key, paper in PAPER_FONTS.items():
            if isinstance(inp.fonts.get(key), int):  # fonts are rendered once, not per seed: a plain count
                _compare(gaps, f"Fonts: {key}", paper, inp.fonts[key], "ratio")
    params = {k: [dataclasses.asdict(i) for i in v] if k == "models" else
              (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in p.items()}
    out += ["### Params", "```json\n" + json.dumps(params, indent=2) + "\n```"]
    return "\n\n".join(out)


def _headline(inp: Inputs, gaps: list[Gap]) -> str:
    rows = []

    def row(what, paper, ours, *, kind="points", fmt=_pct, missing="not run"):
        _compare(gaps, what, paper, ours, kind)
        rows.append([what, _num(paper, ".4g"), missing if ours is None else fmt(ours)])

    def per_model(paper_values, what, value, **kw):
        """One row per model the paper reports (key None = unsanitized); value(attack metrics) -> ours."""
        for key, paper in paper_values.items():
            model = inp.find(*(key or (None, 0.0)))
            name = "unsanitized" if key is None else f"{key[0]} ≥ {threshold_label(key[1])}"
            row(what.format(name), paper, value(model.attacks) if model else None,
                missing="not run" if model else f"not run (no {name} model)", **kw)

    row("Unsanitized model: test accuracy (§3.1)", PAPER_UNSANITIZED_ACC[inp.dataset],
        inp.unsanitized.train["test_acc"])
    row("Canonical model: font hold-out accuracy (§3.2)", PAPER_CANONICAL["holdout_acc"],
        inp.canonical["holdout_acc"])
    if inp.dataset == "mnist":
        row("Canonical model: accuracy on the training images (§3.2)", PAPER_CANONICAL["mnist_train_acc"],
            inp.scores["canonical_train_acc"])
        per_model(PAPER_IGSM5, "IGSM, 5 iterations: accuracy of the {} model (§3.3)",
                  lambda attacks: _get(_by_float(_get(attacks, "igsm")).get(5.0), "acc"))
        per_model(PAPER_CW0_L2, "C&W κ = 0: mean L2 on the {} model (Fig. 5)",
                  lambda attacks: _get(_by_float(_get(attacks, "cw")).get(0.0), "mean_l2"), kind="ratio", fmt=_num)
    note = ("Paper L2 values are read off Fig. 5, so approximate." if inp.dataset == "mnist"
            else "The paper gives 94.26% at threshold 0 in Table 3, against 98.62% in §3.1.")
    return "\n\n".join(["## 2. Headline numbers", _table(["quantity", "paper", "ours"], rows), note])


def _size_table(inp: Inputs, method: str, paper: dict, gaps: list[Gap], label: str) -> str:
    ours = {float(r["threshold"]): r for r in inp.tables.get(method) or []}
    total, paper_total = inp.tables["total"], PAPER_TRAIN_SIZE[inp.dataset]
    with_acc = inp.dataset == "svhn"
    rows = []
    for t in sorted(set(ours) | set(paper)):
        mine = ours.get(t)
        size, acc = paper.get(t, (None, None)) if with_acc else (paper.get(t), None)
        share = None if size is None else size / paper_total
        if mine and size is not None and t > 0:
            what = f"{label}, threshold {threshold_label(t)}: kept share"
            _compare(gaps, what, 100 * share, mine["fraction"])
        cells = [threshold_label(t), DASH if mine is None else _num(mine["size"], ".6g", n=False),
                 _pct(mine and mine["fraction"], n=False), _num(size, "d"), _pct(share)]
        if with_acc:
            model = inp.find(None if t == 0 else method, t)
            test_acc = _get(model.train, "test_acc") if model else None
            if acc is not None:
                _compare(gaps, f"{label}, threshold {threshold_label(t)}: test accuracy", acc, test_acc)
            cells += [_pct(test_acc), _num(acc, ".2f")]
        rows.append(cells)
    header = ["threshold", "ours: kept", f"ours: % of {total}", "paper: kept", f"paper: % of {paper_total}"]
    header += ["ours: test acc %", "paper: test acc %"] if with_acc else []
    return f"**{label}** ({method} sanitization)\n\n" + _table(header, rows)


def _retention(inp: Inputs, figdir: Path) -> list[str]:
    """The retention curve of benchmarks/retention_curve.py: why the classifiers train the epochs they do."""
    r = inp.retention
    if r is None:
        return [_not_run("no retention curve given (stage report --retention)")]
    train, recipe = inp.params["train"], r["recipe"]
    same = all(getattr(train, k) == v for k, v in recipe.items()) and train.precision == r["precision"]
    labels = [threshold_label(t) for t in r["thresholds"]]
    keys = [f"share_{label}" for label in labels]
    rows = [[f"**{e['epoch']}**" if e["epoch"] == r["closest_epoch"] else str(e["epoch"]),
             _pct(_ci(e["test_acc"]), n=False)] + [_pct(_ci(e[k]), n=False) for k in keys]
            + [_num(e["rms_points_from_paper"], ".1f", n=False)] for e in r["curve"]]
    paper = [_pct(r["paper_table2_share"][label], n=False) for label in labels]
    rows.append(["paper (Table 2)", DASH] + paper + [DASH])
    series = {label: {e["epoch"]: tuple(100 * _ci(e[k])[f] for f in ("mean", "lo", "hi")) for e in r["curve"]}
              for label, k in zip(labels, keys)}
    fig = figures.retention_curve(series, {label: 100 * r["paper_table2_share"][label] for label in labels},
                                  chosen=train.epochs if same else None)
    recipe_text = ", ".join(f"{k} {v}" for k, v in recipe.items())
    return [f"**Retention vs epochs.** The share of the pool that self sanitization keeps is a fingerprint of how "
            f"long the scoring model trained, and Table 2 reports it for the paper's set-up. "
            f"`benchmarks/retention_curve.py` (run by hand, not a stage; its output is committed) trained the "
            f"unsanitized model with {recipe_text}, {r['precision']}, for seeds {r['seeds']}, and scored the pool "
            f"after every epoch: mean [95% t interval, clipped to 0–100] over seeds, and the rms distance from "
            f"Table 2 in points. "
            f"{r['closest_epoch']} epochs lie closest. "
            + (f"This run trains its classifiers {train.epochs} epochs with the same recipe."
               if same else "This run's training recipe differs from the curve's (params train), so the curve "
                            "does not describe it."),
            _table(["epochs", "test acc %"] + [f"≥ {label}" for label in labels] + ["rms from paper"], rows),
            _figure(figdir, "retention_curve.png", fig, "Share of the pool kept by self sanitization vs the "
                    "unsanitized model's training epochs, with 95% bands; dashed: the paper's Table 2.")]


def _selection(inp: Inputs) -> list[str]:
    """The canonical face selections of benchmarks/canonical_selection.py against the paper's set-up numbers."""
    r = inp.selection
    if r is None:
        return [_not_run("no canonical selection given (stage report --selection)")]
    paper = r["paper_points"]
    shares = [k for k in paper if k.startswith("share_")]
    rows = []
    for name, c in r["candidates"].items():
        e = next(e for e in c["curve"] if e["epoch"] == c["closest_epoch"])
        rows.append([f"`{name}`", ", ".join(f"{k} {v}" for k, v in c["overrides"].items()) or "today's defaults",
                     str(c["fonts"].get("faces_kept", DASH)), str(e["epoch"]), _pct(e["pool_acc"]["mean"], n=False),
                     _pct(e["holdout_acc"]["mean"], n=False)] + [_pct(e[k]["mean"], n=False) for k in shares]
                    + [_num(e["confidence_8"]["mean"], ".2f", n=False), _num(e["rms_points_from_paper"], ".1f", n=False)])
    rows.append(["paper", DASH, DASH, DASH, _num(paper["pool_acc"], ".1f", n=False), DASH]
                + [_num(paper[k], ".2f", n=False) for k in shares] + [DASH, DASH])
    return [f"**Canonical face selections.** `benchmarks/canonical_selection.py` (run by hand, not a stage; its output "
            f"is committed) trained the canonical model on each candidate selection or rendering of the faces (params "
            f"`fonts`) for {r['epochs']} epochs, seeds {r['seeds']}, and measured it after every epoch on the paper's "
            "set-up numbers: accuracy on the MNIST pool (paper §3.2: 88%) and the Table 1 shares. Each row shows the "
            "epoch closest to them (rms distance in points); mean confidence on the MNIST 8s shows where the gap "
            "lies. One seed: no interval.",
            _table(["candidate", "change", "faces", "epoch", "pool acc %", "hold-out acc %"]
                   + [f"≥ {k.removeprefix('share_')} %" for k in shares] + ["mean conf. on 8s", "rms from paper"], rows)]


def _ci(entry: dict) -> dict:
    """A retention-curve entry {mean, lo, hi} as a Stat-shaped dict over its seeds, for the formatters.

    The t interval is clipped to [0, 1], the range of a share or an accuracy.
    """
    return {"mean": entry["mean"], "sd": None, "lo": max(0.0, entry["lo"]), "hi": min(1.0, entry["hi"]), "n": None,
            "seeds": None, "per_seed": None, "interval": "t"}


def _sizes(inp: Inputs, gaps: list[Gap], figdir: Path) -> str:
    out = ["## 3. Sanitized training-set size (Tables 1, 2, 3)"]
    if inp.tables is None:
        return "\n\n".join(out + [_missing(inp.metrics / "tables.json")])
    out.append(f"Our pool is the training set less the validation split ({inp.tables['total']} images), so the "
               "comparison is by share of the pool. Our counts and shares are means over the seeds' scoring models "
               f"with a t interval over the {len(inp.seeds)} seed(s). A test accuracy is of the sanitized model "
               "trained at that threshold, where the run trained one.")
    if inp.dataset == "mnist":
        for method, paper, label in (("canonical", PAPER_TABLE1, "Table 1"), ("self", PAPER_TABLE2, "Table 2")):
            if inp.tables.get(method) is None:
                out.append(f"**{label}**: " + _not_run(f"tables.json holds no {method} rows"))
            else:
                out.append(_size_table(inp, method, paper, gaps, label))
        out += _retention(inp, figdir)
        out += _selection(inp)
    else:
        out.append("**Canonical sanitization**: not applicable to SVHN (paper §3.2: no canonical colour digits).")
        out.append(_size_table(inp, "self", PAPER_TABLE3, gaps, "Table 3") if inp.tables.get("self")
                   else _not_run("tables.json holds no self rows"))
    return "\n\n".join(out)
