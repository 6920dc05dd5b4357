"""The report: the paper's numbers beside ours, figures, and what differs (paper §3).

Reads ``metrics/aggregate.json`` (every number, with its interval) and
``metrics/verdicts.json`` (one verdict per claim), the per-seed CDF plot data
under ``metrics/models/``, and three files under ``data/`` (the headline
model's first-seed attacks and divergences, the font preview),
and writes into one output folder: ``report.md``, ``figures/*.png`` and
``threshold_<method>.csv`` (IGSM accuracy and C&W distortion per sanitization
threshold, a DVC plot). It never writes under ``metrics/``.

A section the run has nothing for (an SVHN run has no canonical sanitization)
says "Not run"; a missing or stale aggregate is an error (run dvc repro).

Every number called "paper" comes from the constant block in `paper.py`,
typed in from Liu, Chen and Chen (2018); every number called "ours" comes from
the aggregate, which computed its interval; the report only formats. Metrics store accuracies and rates as fractions in [0, 1]; the
report shows them, like the paper, as percentages.

One module per part: `inputs` reads the files, `tables`, `robustness`,
`detection`, `gallery` and `adaptive` write the sections, `gaps` collects the
numbers compared with the paper and lists the large differences. This module
puts the sections in order and writes the files.
"""
from __future__ import annotations

from pathlib import Path

from cull.artifacts import atomic_path
from cull.report.adaptive import ADAPTIVE_NOT_RUN, _adaptive
from cull.report.detection import _detection
from cull.report.gallery import _composition, _curves, _fonts, _grid
from cull.report.gaps import Gap, _differences
from cull.report.inputs import PARAM_KEYS, Inputs, gather
from cull.report.robustness import _cw, _igsm, _threshold_csvs
from cull.report.tables import _headline, _intro, _run_context, _sizes
from cull.report.verdicts import _verdicts

__all__ = ["PARAM_KEYS", "SECTIONS", "Gap", "Inputs", "gather", "write_report"]


SECTIONS = ("Verdicts", "Run context", "Headline numbers", "Sanitized training-set size", "Class composition",
            "Robustness to IGSM", "Carlini & Wagner distortion", "Detection", "Training curves",
            "Example adversarial images", "Canonical examples", "Differences from the paper", "Adaptive attacker")


def write_report(inp: Inputs, out: Path) -> str:
    """Write report.md, figures/*.png and threshold_<method>.csv under `out`; return one summary line."""
    out = Path(out)
    figdir = out / "figures"
    gaps: list[Gap] = []
    parts = [_intro(inp), _verdicts(inp), _run_context(inp, gaps), _headline(inp, gaps), _sizes(inp, gaps, figdir),
             _composition(inp, figdir), _igsm(inp, figdir), _cw(inp, figdir), _detection(inp, figdir, gaps),
             _curves(inp, figdir), _grid(inp, figdir), _fonts(inp, figdir)]
    parts.append(_differences(inp, gaps))  # after the paper's sections: it lists the gaps they collected
    parts.append(_adaptive(inp))  # beyond the paper; compares nothing with it
    _threshold_csvs(inp, out)
    text = "\n\n".join(parts) + "\n"
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    n_figures, not_run = text.count("](figures/"), text.count("_Not run:") + text.count(ADAPTIVE_NOT_RUN)
    large = sum(g.large for g in gaps)
    verdicts = [v["verdict"] for v in inp.verdicts.values()]
    tally = ", ".join(f"{verdicts.count(v)} {v.lower()}" for v in ("REPRODUCED", "CONTRADICTED", "INCONCLUSIVE"))
    return (f"report: wrote {out / 'report.md'} with {n_figures} figures; {not_run} part(s) not run; "
            f"{large} of {len(gaps)} compared numbers differ markedly from the paper; claims: {tally}")
