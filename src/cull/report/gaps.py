"""Numbers compared with the paper's, and section 11, "Differences from the paper".

Sections 1-7 append a `Gap` for each number the paper also reports (`_compare`);
`_differences` lists the large ones after all of them have run.
"""
from __future__ import annotations

from dataclasses import dataclass

from cull.report.inputs import Inputs, _get
from cull.report.markdown import DASH, _plain
from cull.report.paper import (
    GAP_POINTS,
    GAP_RATIO,
    PAPER_ACCEPTANCE,
    PAPER_TABLE5,
    PAPER_TRAIN_SIZE,
)


@dataclass(frozen=True)
class Gap:
    """One number the paper reports beside ours. kind: "points" (both %) or "ratio"."""

    what: str
    paper: float
    ours: float
    kind: str

    @property
    def large(self) -> bool:
        if self.kind == "points":
            return abs(self.ours - self.paper) > GAP_POINTS
        low, high = sorted((abs(self.ours), abs(self.paper)))
        return high > 0 and (low == 0 or high / low > GAP_RATIO)

    def sentence(self) -> str:
        if self.kind == "points":
            return f"ours {self.ours:.2f}%, paper {self.paper:.2f}% ({self.ours - self.paper:+.2f} points)"
        ratio = f"{self.ours / self.paper:.2f}x the paper's" if self.paper else "paper 0"
        return f"ours {_plain(self.ours)}, paper {_plain(self.paper)} ({ratio})"


def _compare(gaps: list[Gap], what: str, paper: float, ours, kind: str = "points") -> None:
    if ours is not None:
        gaps.append(Gap(what, float(paper), float(ours), kind))


def _differences(inp: Inputs, gaps: list[Gap]) -> str:
    large = [g for g in gaps if g.large]
    out = ["## 11. Differences from the paper",
           f"Compared {len(gaps)} numbers; {len(large)} differ markedly (more than {GAP_POINTS:g} points for a rate "
           f"or share, more than a factor {GAP_RATIO:g} for an L2 distortion, a KL threshold or a count). "
           "Nothing was tuned to match."]
    out.append("\n".join(f"- **{g.what}**: {g.sentence()}." for g in large) if large else "No marked difference.")
    p = inp.params
    setup = [f"Our sanitization pool is {_get(inp.tables, 'total') or DASH} images (the training set less "
             f"{p['split'].val_size} for validation); the paper's is {PAPER_TRAIN_SIZE[inp.dataset]}.",
             f"Our classifiers train for {p['train'].epochs} epochs ({p['train'].optimizer}, lr {p['train'].lr}); "
             "the paper does not state its training schedule.",
             f"IGSM runs on {p['igsm'].n} test images and C&W on {p['cw'].n} source images × 9 targets per model. "
             "The paper does not state its counts; its Table 5 C&W rates are multiples of 1/135, as 15 sources "
             "× 9 targets would give.",
             _cw_settings(p["cw"]),
             f"Our detector accepts {100 * p['detect'].acceptance:g}% of validation normals; the paper uses "
             f"{100 * PAPER_ACCEPTANCE[inp.dataset]:g}% on {inp.dataset.upper()}."]
    head = inp.sanitized[0]
    if inp.dataset == "mnist" and inp.find(*PAPER_TABLE5["model"]) is None:
        setup.append(f"Tables 5 and 6 are for a canonical ≥ 0.9999 model; ours compares {head.label}.")
    if inp.stale_sweep:
        setup.append("Ignored folders under metrics/sweep that params.sweep no longer lists: "
                     + ", ".join(inp.stale_sweep) + ".")
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
