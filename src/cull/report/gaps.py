"""Numbers compared with the paper's, and section 11, "Differences from the paper".

Sections 1-7 append a `Gap` for each number the paper also reports (`_compare`);
`_differences` lists the large ones after all of them have run. The test is
against our 95% interval, not our point estimate: a number differs markedly
when the paper's value lies outside our interval widened by the tolerance
(`GAP_POINTS` for a rate, a factor `GAP_RATIO` for a distortion, a threshold or
a count). Where our interval is undefined (one seed), the mean stands in.
"""
from __future__ import annotations

from dataclasses import dataclass

from cull.report.inputs import Inputs
from cull.report.markdown import DASH, _plain
from cull.report.paper import GAP_POINTS, GAP_RATIO, PAPER_ACCEPTANCE, PAPER_TABLE5, PAPER_TRAIN_SIZE
from cull.schema import is_stat


@dataclass(frozen=True)
class Gap:
    """One number the paper reports beside ours (mean and 95% interval). kind: "points" (both %) or "ratio"."""

    what: str
    paper: float
    ours: float
    lo: float | None
    hi: float | None
    kind: str

    @property
    def large(self) -> bool:
        lo, hi = (self.lo, self.hi) if self.lo is not None else (self.ours, self.ours)
        if self.kind == "points":
            return self.paper < lo - GAP_POINTS or self.paper > hi + GAP_POINTS
        if self.paper <= 0 or lo <= 0:
            return (self.paper == 0) != (hi == 0)
        return self.paper < lo / GAP_RATIO or self.paper > hi * GAP_RATIO

    def sentence(self) -> str:
        interval = f" [{_plain(self.lo)}, {_plain(self.hi)}]" if self.lo is not None else " (no interval: one seed)"
        if self.kind == "points":
            return (f"ours {self.ours:.2f}%{interval.replace(']', '%]') if self.lo is not None else interval}, "
                    f"paper {self.paper:.2f}% ({self.ours - self.paper:+.2f} points)")
        ratio = f"{self.ours / self.paper:.2f}x the paper's" if self.paper else "paper 0"
        return f"ours {_plain(self.ours)}{interval}, paper {_plain(self.paper)} ({ratio})"


def _compare(gaps: list[Gap], what: str, paper: float, ours, kind: str = "points") -> None:
    """Record ours (a Stat or a number; a rate as a fraction for kind "points") beside the paper's value."""
    if ours is None or (is_stat(ours) and ours["mean"] is None):
        return
    scale = 100.0 if kind == "points" else 1.0
    if is_stat(ours):
        lo = None if ours["lo"] is None else scale * ours["lo"]
        hi = None if ours["hi"] is None else scale * ours["hi"]
        gaps.append(Gap(what, float(paper), scale * ours["mean"], lo, hi, kind))
    else:
        gaps.append(Gap(what, float(paper), scale * float(ours), None, None, kind))


def _differences(inp: Inputs, gaps: list[Gap]) -> str:
    large = [g for g in gaps if g.large]
    out = ["## 11. Differences from the paper",
           f"Compared {len(gaps)} numbers; {len(large)} differ markedly: the paper's value lies outside our 95% "
           f"interval widened by {GAP_POINTS:g} points for a rate or share, or by a factor {GAP_RATIO:g} for an L2 "
           "distortion, a KL threshold or a count. Nothing was tuned to match."]
    out.append("\n".join(f"- **{g.what}**: {g.sentence()}." for g in large) if large else "No marked difference.")
    p = inp.params
    total = inp.tables["total"] if inp.tables else DASH
    setup = [f"Our sanitization pool is {total} images (the training set less "
             f"{p['split'].val_size} for validation); the paper's is {PAPER_TRAIN_SIZE[inp.dataset]}.",
             f"Every model is trained once per seed ({', '.join(map(str, inp.seeds))}); the paper reports one run "
             "and no spread.",
             f"Our classifiers train for {p['train'].epochs} epochs and the canonical model for "
             f"{p['train'].canonical_epochs} ({_recipe(p['train'])}); the paper does not state its training "
             "schedule. Carlini's train_models.py recipe is SGD, Nesterov, lr 0.01, decay 1e-6; its epoch count "
             "that best fits Table 2's shares is 16 (benchmarks/results/retention.json).",
             f"IGSM runs on {p['igsm'].n} test images and C&W on {p['cw'].n} source image(s) × 9 targets per model "
             f"and seed ({len(inp.seeds) * p['cw'].n * 9} rows per κ in all). The paper does not state its counts; "
             "its Table 5 C&W rates are multiples of 1/135, as 15 sources × 9 targets would give.",
             _cw_settings(p["cw"]),
             f"Our detector accepts {100 * p['detect'].acceptance:g}% of validation normals; the paper uses "
             f"{100 * PAPER_ACCEPTANCE[inp.dataset]:g}% on {inp.dataset.upper()}."]
    head = inp.sanitized[0]
    if inp.dataset == "mnist" and inp.find(*PAPER_TABLE5["model"]) is None:
        setup.append(f"Tables 5 and 6 are for a canonical ≥ 0.9999 model; ours compares {head.label}.")
    out += ["Set-up differences:", "\n".join(f"- {s}" for s in setup)]
    return "\n\n".join(out)


def _cw_settings(cw) -> str:
    """How our C&W search departs from Carlini and Wagner's code, which the paper used."""
    fast = []
    if cw.precision != "float32":
        fast.append(f"runs the model in {cw.precision} inside the search (success is judged in float32)")
    if cw.search_tolerance > 0:
        fast.append(f"ends an example's binary search once c is bracketed within {100 * cw.search_tolerance:g}%")
    if not fast:
        return "C&W runs the original algorithm in float32, every search step."
    return (f"For speed, our C&W {' and '.join(fast)}; on the paper's set this raises the mean L2 by under 1% "
            "(benchmarks/bench_cw.py). `-S cw.precision=float32 -S cw.search_tolerance=0` runs the original.")


def _recipe(train) -> str:
    """The optimizer settings as one phrase, e.g. 'sgd, Nesterov momentum 0.9, lr 0.01, decay 1e-06, bfloat16'."""
    if train.optimizer == "sgd":
        momentum = f"{'Nesterov ' if train.nesterov else ''}momentum {train.momentum:g}, " if train.momentum else ""
        opt = f"sgd, {momentum}lr {train.lr:g}, decay {train.lr_decay:g}"
    else:
        opt = f"{train.optimizer}, lr {train.lr:g}"
    return f"{opt}, {train.precision}"
