"""Matplotlib figures for the report (paper Fig. 4-8, 10, 11, training curves, an image grid).

Each function takes plain numbers that `cull.report` gathered from the metrics
files and returns a `matplotlib.figure.Figure` (no pyplot, so no global figure
state and no display backend), or None when there is nothing to draw. Save
with `cull.artifacts.save_figure`.

Sanitization thresholds crowd towards 1 (0.9, 0.9999, 0.9999999), so they
are drawn as evenly spaced categories in increasing order, as in the paper.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

KL_FLOOR = 1e-6  # divergences below this are drawn at it on the log axis (a KL of exactly 0 has no log)
PANEL = (4.6, 3.4)  # inches per subplot
PAPER_STYLE = {"color": "black", "linestyle": "--", "marker": "s", "fillstyle": "none"}  # the paper's points
GRID_ROWS = 4  # (source image, target class) pairs shown in the adversarial image grid


def threshold_label(threshold: float) -> str:
    """Shortest exact text of a threshold: 0, 0.7, 0.9999999 (``%g`` would print 1)."""
    text = repr(float(threshold))
    return text[:-2] if text.endswith(".0") else text


def _panels(n: int, *, rows: int = 1) -> tuple[Figure, list]:
    cols = math.ceil(n / rows)
    fig = Figure(figsize=(PANEL[0] * cols, PANEL[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _finish(ax, *, xlabel: str, ylabel: str | None = None, title: str | None = None) -> None:
    """The labels, title and light grid every panel gets."""
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)


def _legend_outside(ax, **kwargs) -> None:
    """The legend right of `ax`, outside the plot: its series are shared by every panel."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), **kwargs)


def threshold_lines(panels: Mapping[str, Mapping[str, Mapping[float, float]]], *, ylabel: str,
                    title: str) -> Figure | None:
    """One subplot per panel (sanitization method), one line per series (IGSM iterations, C&W kappa).

    Parameters
    ----------
    panels : {panel title: {series label: {threshold: value}}}; threshold 0 is
        the unsanitized model. A value is a number, or (mean, lo, hi): the mean
        over seeds with its 95% interval, drawn as an error bar. Series with no
        point are skipped; a series whose label starts with "paper" is drawn as
        a dashed black reference.
    """
    panels = {k: {s: pts for s, pts in v.items() if pts} for k, v in panels.items()}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, (name, series) in zip(axes, panels.items()):
        ticks = sorted({t for pts in series.values() for t in pts})
        x = {t: i for i, t in enumerate(ticks)}
        for label, pts in series.items():
            ts = sorted(pts)
            style = PAPER_STYLE if label.startswith("paper") else {"marker": "o"}
            ys = [pts[t][0] if isinstance(pts[t], tuple) else pts[t] for t in ts]
            if all(isinstance(pts[t], tuple) for t in ts):
                err = [[y - pts[t][1] for t, y in zip(ts, ys)], [pts[t][2] - y for t, y in zip(ts, ys)]]
                ax.errorbar([x[t] for t in ts], ys, yerr=err, capsize=3, label=label, **style)
            else:
                ax.plot([x[t] for t in ts], ys, label=label, **style)
        ax.set_xticks(range(len(ticks)), [threshold_label(t) for t in ticks], rotation=30, ha="right")
        _finish(ax, xlabel="sanitization threshold (0 = unsanitized)", ylabel=ylabel, title=name)
    _legend_outside(axes[-1])
    fig.suptitle(title)
    return fig


def alpha_sweep(series: Mapping[str, Mapping[float, tuple[float, float, float]]], *, target: float | None,
                calibrated: float | None, reference: float | None) -> Figure | None:
    """Accuracy against the IGSM step size, one line per iteration count, with 95% error bars.

    Parameters
    ----------
    series : {label: {alpha: (mean, lo, hi)}}, accuracies in %.
    target : the paper's accuracy the calibration aims at (a dashed horizontal line), or None.
    calibrated, reference : step sizes marked by vertical lines (solid, dotted), or None.
    """
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, (ax,) = _panels(1)
    for label, pts in series.items():
        xs = sorted(pts)
        ys = [pts[a][0] for a in xs]
        err = [[y - pts[a][1] for a, y in zip(xs, ys)], [pts[a][2] - y for a, y in zip(xs, ys)]]
        ax.errorbar(xs, ys, yerr=err, capsize=3, marker="o", label=label)
    if target is not None:
        ax.axhline(target, **{k: v for k, v in PAPER_STYLE.items() if k in ("color", "linestyle")},
                   label=f"paper, unsanitized, 5 iterations ({target:g}%)")
    if calibrated is not None:
        ax.axvline(calibrated, color="tab:red", label=f"calibrated step {calibrated:.4f}")
    if reference is not None:
        ax.axvline(reference, color="grey", linestyle=":", label=f"cleverhans default {reference:g}")
    _finish(ax, xlabel="IGSM step size alpha", ylabel="accuracy on IGSM examples (%)",
            title="Unsanitized model, IGSM step-size sweep")
    _legend_outside(ax)
    return fig


def retention_curve(series: Mapping[str, Mapping[int, tuple[float, float, float]]], paper: Mapping[str, float], *,
                    chosen: int | None) -> Figure | None:
    """Share of the pool kept (%) against training epochs, one line per threshold, with 95% bands.

    Parameters
    ----------
    series : {threshold label: {epoch: (mean, lo, hi)}}.
    paper : {threshold label: the paper's share (%)}, drawn as dashed lines in the series' colours.
    chosen : the epoch count the run trained (a vertical line), or None.
    """
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, (ax,) = _panels(1)
    for label, pts in series.items():
        xs = sorted(pts)
        (line,) = ax.plot(xs, [pts[e][0] for e in xs], marker=".", label=f"≥ {label}")
        ax.fill_between(xs, [pts[e][1] for e in xs], [pts[e][2] for e in xs], color=line.get_color(), alpha=0.15)
        if label in paper:
            ax.axhline(paper[label], color=line.get_color(), linestyle="--", linewidth=1)
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle=":", label=f"this run: {chosen} epochs")
    _finish(ax, xlabel="training epochs (unsanitized model)", ylabel="share of the pool kept (%)",
            title="Self-sanitization retention vs epochs\n(dashed: the paper's Table 2)")
    _legend_outside(ax)
    return fig


def roc_panels(panels: Mapping[str, Mapping[str, tuple[list, list, list | None, list | None]]], *,
               title: str) -> Figure | None:
    """ROC curves, one panel per attack setting, one curve per detector, with a 95% band where there is one.

    Parameters
    ----------
    panels : {panel title: {detector label: (fpr, tpr mean, tpr lo or None, tpr hi or None)}}, each a
        list over the false-positive rates at which the metrics record the curve; (0, 0) and (1, 1) are added.
    """
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    fig, axes = _panels(len(panels), rows=math.ceil(len(panels) / 4))
    for ax, (name, curves) in zip(axes, panels.items()):
        for label, (fpr, tpr, lo, hi) in curves.items():
            (line,) = ax.plot([0.0, *fpr, 1.0], [0.0, *tpr, 1.0], marker=".", label=label)
            if lo is not None and hi is not None and None not in lo and None not in hi:
                ax.fill_between(fpr, lo, hi, color=line.get_color(), alpha=0.15)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("symlog", linthresh=0.01)  # the low-FPR end is where a detector is usable
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        _finish(ax, xlabel="false-positive rate on normal test examples", ylabel="true-positive rate", title=name)
    _legend_outside(axes[-1])
    fig.suptitle(title)
    return fig


def cdf_panels(panels: list[tuple[str, list[Mapping[str, tuple[np.ndarray, np.ndarray]]], float | None]], *,
               xlabel: str, title: str) -> Figure | None:
    """Empirical CDFs, one subplot per sanitized model, one curve per set and seed.

    Parameters
    ----------
    panels : [(panel title, [per seed: {set name: (values (n,), cdf (n,))}], detector threshold or None)];
        values ascending, cdf in [0, 1]. The set "normal" is drawn black; a set keeps
        its colour across seeds, so the spread between seeds shows as a band of curves.
    """
    panels = [p for p in panels if any(p[1])]
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, (name, seeds, tau) in zip(axes, panels):
        colours = {}
        for i, curves in enumerate(seeds):
            for label, (values, cdf) in curves.items():
                colours.setdefault(label, "black" if label == "normal" else f"C{len(colours) % 10}")
                style = {"linewidth": 2 if label == "normal" else 1.2, "alpha": 1.0 if i == 0 else 0.5}
                ax.step(np.maximum(values, KL_FLOOR), cdf, where="post", color=colours[label],
                        label=label if i == 0 else None, **style)
        if tau is not None:
            ax.axvline(max(tau, KL_FLOOR), color="grey", linestyle="--", label=f"threshold {tau:.3g}")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        _finish(ax, xlabel=xlabel, ylabel="CDF", title=name)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def composition(panels: Mapping[str, list[dict]]) -> Figure | None:
    """Share of each class in the kept set vs threshold (paper Fig. 11), one subplot per method.

    Parameters
    ----------
    panels : {method: rows of metrics/tables.json, each with ``threshold`` and
        ``class_fractions`` (K,)}; a method whose rows are None is skipped.
    """
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, (name, rows) in zip(axes, panels.items()):
        rows = sorted(rows, key=lambda r: r["threshold"])
        x = range(len(rows))
        # class_fractions: (K,) numbers, or (K,) aggregate Stats (mean over seeds with a 95% t interval)
        stats = [[f if isinstance(f, dict) else {"mean": f, "lo": None, "hi": None} for f in r["class_fractions"]]
                 for r in rows]
        shares = np.array([[f["mean"] for f in r] for r in stats])  # (thresholds, K)
        for k in range(shares.shape[1]):
            ax.plot(x, 100 * shares[:, k], marker="o", color=f"C{k}", label=str(k))
            lo = [r[k]["lo"] for r in stats]
            if all(v is not None for v in lo):
                ax.fill_between(x, [100 * v for v in lo], [100 * r[k]["hi"] for r in stats], color=f"C{k}", alpha=0.15)
        ax.set_xticks(x, [threshold_label(r["threshold"]) for r in rows], rotation=30, ha="right")
        _finish(ax, xlabel="sanitization threshold", ylabel="share of kept images (%)", title=f"{name} sanitization")
    _legend_outside(axes[-1], title="class")
    fig.suptitle("Class composition of the kept training set (paper Fig. 11)")
    return fig


def training_curves(curves: Mapping[str, list[dict]]) -> Figure | None:
    """Loss, training accuracy and evaluation accuracy per epoch, one line per model.

    Parameters
    ----------
    curves : {model name: rows with ``epoch``, ``loss``, ``train_acc``, ``eval_acc``}; a value is a
        number, or an aggregate Stat (mean over seeds, drawn with a band of its 95% t interval).
    """
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, axes = _panels(3)
    for ax, key in zip(axes, ("loss", "train_acc", "eval_acc")):
        for name, rows in curves.items():
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if not pts:
                continue
            epochs = [e for e, _ in pts]
            ys = [v["mean"] if isinstance(v, dict) else v for _, v in pts]
            (line,) = ax.plot(epochs, ys, marker="o", label=name)
            if all(isinstance(v, dict) and v["lo"] is not None for _, v in pts):
                ax.fill_between(epochs, [v["lo"] for _, v in pts], [v["hi"] for _, v in pts],
                                color=line.get_color(), alpha=0.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _finish(ax, xlabel="epoch", title=key)
    _legend_outside(axes[-1])
    fig.suptitle("Training curves (eval: font hold-out for the canonical model, test set for the others)")
    return fig


def image_grid(cells: list[list[tuple[np.ndarray, str] | None]], *, col_titles: list[str], title: str) -> Figure:
    """A rows x cols grid of images with a caption under each.

    Parameters
    ----------
    cells : rows of (image (C, H, W) float in [0, 1], caption) or None for an empty cell.
    col_titles : one title per column.
    """
    rows, cols = len(cells), len(col_titles)
    fig = Figure(figsize=(1.6 * cols, 1.9 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, row in enumerate(cells):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j], fontsize="small")
            if j >= len(row) or row[j] is None:
                ax.set_axis_off()
                continue
            image, caption = row[j]
            image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
            if image.shape[0] == 1:
                ax.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(image.transpose(1, 2, 0))
            ax.set_xlabel(caption, fontsize="x-small")
    fig.suptitle(title)
    return fig


def grid_cells(attacks: dict, divergence: np.ndarray | None, *, rows: int = GRID_ROWS) -> tuple[list, list[str]]:
    """Cells for `image_grid`: up to `rows` (source, target) pairs, taken from each source in turn, x every kappa.

    Parameters
    ----------
    attacks : arrays of data/attacks/<model>.npz: ``cw_adv`` (M, C, H, W) in [0, 1], ``cw_source``,
        ``cw_target``, ``cw_kappa``, ``cw_success`` (M,), optionally ``cw_index`` (M,) test-image index.
    divergence : (M,) divergence of each C&W row, or None.
    """
    m = len(attacks["cw_adv"])
    names = ("cw_source", "cw_target", "cw_kappa", "cw_success") + (("cw_index",) if "cw_index" in attacks else ())
    for key in names:
        if len(attacks[key]) != m:
            raise ValueError(f"attacks: {key} has {len(attacks[key])} rows, cw_adv {m}")
    source = attacks.get("cw_index", attacks["cw_source"])
    kappas = sorted({float(k) for k in attacks["cw_kappa"]})
    pairs: dict[tuple[int, int], dict[float, int]] = {}
    for r in range(m):
        pair = (int(source[r]), int(attacks["cw_target"][r]))
        pairs.setdefault(pair, {}).setdefault(float(attacks["cw_kappa"][r]), r)  # first row per (pair, kappa)
    queues: dict[int, list] = {}
    for pair in pairs:
        queues.setdefault(pair[0], []).append(pair)
    chosen = []
    while len(chosen) < rows and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < rows:
                chosen.append(queue.pop(0))

    def cell(r):
        if r is None:
            return None
        caption = f"{attacks['cw_source'][r]}→{attacks['cw_target'][r]}"
        caption += f"\ndiv {divergence[r]:.3g}" if divergence is not None else ""
        return attacks["cw_adv"][r], caption + ("" if attacks["cw_success"][r] else "\nnot fooled")

    return [[cell(pairs[p].get(k)) for k in kappas] for p in chosen], [f"κ = {k:g}" for k in kappas]
