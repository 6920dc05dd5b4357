"""Markdown pieces shared by the sections: numbers, tables, "Not run" notes, figures."""
from __future__ import annotations

from pathlib import Path

from cull.artifacts import save_figure

DASH = "—"  # a value the metrics do not hold


def _pct(fraction) -> str:
    return DASH if fraction is None else f"{100 * fraction:.2f}"


def _num(value, spec: str = ".4g") -> str:
    return DASH if value is None else format(value, spec)


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
