"""Markdown pieces shared by the sections: numbers with their intervals, tables, "Not run" notes, figures.

A number of ours is a `Stat` from the aggregate; it prints as
``mean [lo, hi] (n=N)``: the 95% interval and the count behind it (examples
for a pooled rate or mean, seeds for an across-seed statistic).
"""
from __future__ import annotations

from pathlib import Path

from cull.artifacts import save_figure
from cull.schema import is_stat

DASH = "—"  # a value the metrics do not hold


def mean(x):
    """The point value of a Stat (its mean), or `x` itself."""
    return x["mean"] if is_stat(x) else x


def _fmt(x, spec: str, scale: float, with_n: bool) -> str:
    if x is None or mean(x) is None:
        return DASH
    if not is_stat(x):
        return format(x if scale == 1.0 else scale * x, spec)
    text = format(scale * x["mean"], spec)
    if x["lo"] is not None:
        text += f" [{format(scale * x['lo'], spec)}, {format(scale * x['hi'], spec)}]"
    if with_n:
        text += f" (n={x['n']})"
    return text


def _pct(x, *, n: bool = True) -> str:
    """A rate as a percentage, with its interval and n when it is a Stat."""
    return _fmt(x, ".2f", 100.0, n)


def _num(x, spec: str = ".4g", *, n: bool = True) -> str:
    return _fmt(x, spec, 1.0, n)


def _plain(value: float) -> str:
    """A whole number without exponent (71400), anything else to 4 significant digits."""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731 (a font may be named "a|b")
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def _not_run(what: str) -> str:
    return f"_Not run: {what}._"


def _missing(*paths: Path) -> str:
    return _not_run(", ".join(str(p) for p in paths) + (" is" if len(paths) == 1 else " are") + " missing")


def _figure(figdir: Path, name: str, fig, caption: str) -> str:
    if fig is None:
        return _not_run(f"no data for {name}")
    save_figure(figdir / name, fig)
    return f"![{caption}](figures/{name})\n\n_{caption}_"
