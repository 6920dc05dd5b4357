"""The logic inside the one-off measurement scripts of benchmarks/ (not their timings)."""
import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_times_run_from_each_stage_to_the_next():
    paper_scale = _script("paper_scale")
    lines = ["2026-12-07T01:00:00 Running stage 'fonts':",
             "2026-12-07T01:00:10 fonts: 340 faces",
             "not a stamped line",
             "2026-12-07T01:00:12 Running stage 'canonical@0':",
             "2026-12-07T01:01:52 Updating lock file 'dvc.lock'"]
    assert paper_scale.stage_times(lines) == [{"stage": "fonts", "seconds": 12}, {"stage": "canonical@0", "seconds": 100}]


def test_stage_times_read_clock_stamps_past_midnight():
    paper_scale = _script("paper_scale")
    lines = ["23:59:00 Running stage 'train@headline-0':", "00:01:30 Running stage 'attack@headline-0':",
             "00:02:00 done"]
    assert paper_scale.stage_times(lines) == [{"stage": "train@headline-0", "seconds": 150},
                                              {"stage": "attack@headline-0", "seconds": 30}]


def test_a_second_run_keeps_the_first_runs_stage_times(tmp_path):
    paper_scale = _script("paper_scale")
    path = tmp_path / "stage_times.csv"
    path.write_text("stage,seconds\nfonts,12\ntrain@headline-0,90\n")
    merged = paper_scale.merge_times(path, [{"stage": "train@headline-0", "seconds": 95},
                                            {"stage": "train@self-0.9999999-0", "seconds": 70}])
    assert merged == [{"stage": "fonts", "seconds": 12}, {"stage": "train@headline-0", "seconds": 95},
                      {"stage": "train@self-0.9999999-0", "seconds": 70}]


def test_slant_leans_the_top_right_and_keeps_the_centre_row():
    canonical_selection = _script("canonical_selection")
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 4:24, 13] = 255  # a vertical bar in column 13
    slanted = canonical_selection.slanted(image, 0.25, 0.25, seed=0)[0]
    assert slanted.shape == (28, 28) and slanted.dtype == np.uint8
    top = np.average(np.arange(28), weights=slanted[5].astype(float))
    bottom = np.average(np.arange(28), weights=slanted[22].astype(float))
    centre = np.average(np.arange(28), weights=slanted[13].astype(float) + slanted[14].astype(float))
    assert top > 13 + 1.5 and bottom < 13 - 1.5  # rows 8.5 above the centre move 0.25 * 8.5 px right
    assert abs(centre - 13) < 0.25
    assert np.array_equal(canonical_selection.slanted(image, 0.0, 0.0, seed=0), image)


def test_elastic_moves_pixels_by_a_seeded_smooth_field():
    canonical_selection = _script("canonical_selection")
    rng = np.random.default_rng(1)
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(100, 256, (3, 16, 8))
    moved = canonical_selection.elastic(images, 8.0, 3.0, seed=0)
    assert moved.shape == images.shape and moved.dtype == np.uint8
    assert np.array_equal(moved, canonical_selection.elastic(images, 8.0, 3.0, seed=0))  # seeded
    assert not np.array_equal(moved, images)
    assert not np.array_equal(moved[0], canonical_selection.elastic(images[:1], 8.0, 3.0, seed=1)[0])
    # a smooth field of about a pixel keeps the ink's mass and place
    assert abs(moved.astype(float).sum() / images.astype(float).sum() - 1) < 0.1
    assert np.array_equal(canonical_selection.elastic(images, 0.0, 3.0, seed=0), images)


def _readme_tables(heading: str) -> list[list[list[str]]]:
    """The markdown tables under README heading `heading` (up to the next heading), as rows of cells."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    section = section.split("\n#", 1)[0]
    tables, rows = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _mean_interval(cell: str) -> tuple[float, ...]:
    """'82.2 [80.6, 83.8]' -> (82.2, 80.6, 83.8); '98.81' -> (98.81,)."""
    return tuple(float(v) for v in cell.replace("[", " ").replace("]", " ").replace(",", " ").split())


def test_readme_retention_tables_are_the_committed_curves():
    """Every epoch row of the README's retention tables is read off the committed benchmark output it names,
    to the digits shown: a typed-in number that drifts from the measurement fails here."""
    tables = _readme_tables("### Training recipe")
    sources = ("retention", "retention_50")
    assert len(tables) == len(sources), "one README table per committed retention curve"
    for rows, name in zip(tables, sources):
        curve = {e["epoch"]: e for e in json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())["curve"]}
        header, body = rows[0], [r for r in rows[1:] if r[0].isdigit()]
        assert body, name
        thresholds = [h.removeprefix("≥ ") for h in header if h.startswith("≥ ")]
        for row in body:
            entry = curve[int(row[0])]
            assert _mean_interval(row[1]) == (round(100 * entry["test_acc"]["mean"], 2),), (name, row)
            for i, t in enumerate(thresholds, start=2):
                share = entry[f"share_{t}"]
                want = tuple(round(max(0.0, min(100.0, 100 * share[k])), 1) for k in ("mean", "lo", "hi"))
                assert _mean_interval(row[i]) == want, (name, row[0], t)
            assert float(row[-1]) == round(entry["rms_points_from_paper"], 1), (name, row)
