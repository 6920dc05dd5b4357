"""The report stage on tiny fake metrics, and the offline `dvc plots` template."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ruamel.yaml import YAML

from cull import params
from cull.plots import template
from cull.plots.figures import grid_cells
from cull.report import PARAM_KEYS, SECTIONS, Gap, gather, write_report

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("class_composition.png", "igsm_vs_threshold.png", "cw_l2_vs_threshold.png", "cdf_igsm.png",
           "cdf_cw.png", "training_curves.png", "adversarial_grid.png", "fonts_preview.png")
KAPPAS = (0, 0.1, 0.5, 1, 3, 5)
ITERATIONS = (5, 10, 15)


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _csv(path: Path, header: str, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def _params(root: Path, *, dataset: str, method: str, threshold: float, sweep: list[dict]) -> Path:
    path = root / "params.yaml"
    YAML(typ="safe", pure=True).dump({"dataset": dataset, "method": method, "threshold": threshold,
                                      "sweep": sweep, "cw": {"kappas": list(KAPPAS)}}, path)
    return path


def _attacks(rng, quality: float) -> dict:
    return {
        "clean_acc": 0.98,
        "igsm": {str(k): {"acc": float(np.clip(quality - 0.2 * i + rng.normal(0, 0.02), 0, 1))}
                 for i, k in enumerate(ITERATIONS)},
        "cw": {str(k): {"success_rate": 1.0, "mean_l2": 1.5 + quality + 0.1 * j} for j, k in enumerate(KAPPAS)},
        "n_igsm": 20, "n_cw": 2, "seconds_igsm": 1.5, "seconds_cw": 3.0,
    }


def _setting(rng) -> dict:
    return {"n": 20, "detect": float(rng.uniform(0.3, 1)), "auc": 0.9, "tpr_at_1fpr": 0.5, "tpr_at_5fpr": 0.7,
            "classifier": 0.6, "system": 0.95}


def _detect(rng) -> dict:
    igsm = {str(k): _setting(rng) for k in ITERATIONS}
    cw = {f"{k:g}": _setting(rng) for k in KAPPAS}
    other = {"threshold": 0.01, "val_accept": 0.98, "test_accept": 0.97, "igsm": igsm, "cw": cw}
    return {"divergence": "kl", "threshold": 0.0123,
            "normal": {"n_val": 50, "n_test": 50, "val_accept": 0.98, "test_accept": 0.975, "classifier": 0.99,
                       "system_acc": 0.96},
            "igsm": igsm, "cw": cw, "other_divergences": {"reverse": other, "js": other}}


def _cdf_rows(rng) -> list[tuple]:
    rows = []
    for name in ["normal"] + [f"igsm-{k}" for k in ITERATIONS] + [f"cw-{k:g}" for k in KAPPAS]:
        for kind in ("kl", "reverse", "js"):
            values = np.sort(rng.exponential(0.01 if name == "normal" else 1.0, 8))
            values[0] = 0.0  # a divergence of exactly 0 must still plot on the log axis
            rows += [(name, kind, v, (i + 1) / 8) for i, v in enumerate(values)]
    return rows


def _curve(path: Path) -> None:
    _csv(path, "epoch,loss,train_acc,eval_acc", [(1, 0.5, 0.9, 0.92), (2, 0.3, 0.95, 0.96)])


def _class_rows(thresholds, total, rng) -> list[dict]:
    rows = []
    for i, t in enumerate(thresholds):
        counts = (rng.integers(80, 100, 10) * (1 - i / (len(thresholds) + 1))).astype(int)  # sum <= total
        rows.append({"threshold": t, "size": int(counts.sum()), "fraction": float(counts.sum() / total),
                     "class_counts": counts.tolist(), "class_fractions": (counts / counts.sum()).tolist()})
    return rows


def _model_files(folder: Path, names: dict, *, method: str, threshold: float, rng, quality: float) -> None:
    _json(folder / names["filter"], {"method": method, "threshold": threshold, "kept": 900, "dropped": 100})
    _json(folder / names["train"], {"method": method, "threshold": threshold, "test_acc": 0.97, "train_size": 900,
                                    "epochs": 1, "seconds": 2.0})
    _json(folder / names["attacks"], _attacks(rng, quality))
    _json(folder / names["detect"], _detect(rng))
    _csv(folder / names["cdf"], "set,divergence,value,cdf", _cdf_rows(rng))
    _curve(folder / names["curve"])


def fake_run(root: Path, *, dataset: str = "mnist", method: str = "canonical", threshold: float = 0.9999,
             sweep: tuple = (("self", 0.9999999),), complete: bool = True) -> tuple[Path, Path, dict]:
    """A tiny pipeline output under `root`: metrics/, data/ and params.yaml, in the shapes the stages write."""
    rng = np.random.default_rng(0)
    metrics, data = root / "metrics", root / "data"
    p = params.load(_params(root, dataset=dataset, method=method, threshold=threshold,
                            sweep=[{"method": m, "threshold": t} for m, t in sweep]), *PARAM_KEYS)
    _json(metrics / "unsanitized.json", {"test_acc": 0.985, "train_size": 1000, "epochs": 1, "seconds": 3.0})
    _json(metrics / "canonical.json", {"holdout_acc": 0.97, "train_size": 800, "holdout_size": 200, "epochs": 1,
                                       "seconds": 1.0})
    if not complete:
        return metrics, data, p
    _json(metrics / "fonts.json", {"faces_found": 12, "faces_kept": 10, "dropped_duplicate_design": 2, "images": 2100,
                                   "illegible_faces": ["A", "B"], "deny_unmatched": []})
    _json(metrics / "scores.json", {"self_train_acc": 0.99, "canonical_train_acc": None if dataset == "svhn" else 0.8})
    total = 1000
    tables = {"total": total, "self": _class_rows(p["tables"].self, total, rng),
              "canonical": None if dataset == "svhn" else _class_rows(p["tables"].canonical, total, rng)}
    _json(metrics / "tables.json", tables)
    _json(metrics / "attacks/unsanitized.json", _attacks(rng, 0.4))
    _curve(metrics / "curves/unsanitized.csv")
    _curve(metrics / "curves/canonical.csv")
    headline = {"filter": "filter.json", "train": "sanitized.json", "attacks": "attacks/sanitized.json",
                "detect": "detect/sanitized.json", "cdf": "detect/sanitized_cdf.csv", "curve": "curves/sanitized.csv"}
    _model_files(metrics, headline, method=method, threshold=threshold, rng=rng, quality=0.8)
    swept = {"filter": "filter.json", "train": "train.json", "attacks": "attacks.json", "detect": "detect.json",
             "cdf": "detect_cdf.csv", "curve": "curve.csv"}
    for m, t in sweep:
        folder = metrics / "sweep" / params.SweepItem(m, t).name
        _model_files(folder, swept, method=m, threshold=t, rng=rng, quality=0.9)
    # data/attacks/sanitized.npz: 2 sources x 9 targets x 6 kappas C&W rows, source-major
    src = np.repeat([3, 7], 9 * len(KAPPAS))
    tgt = np.array([t for s in (3, 7) for t in range(10) if t != s for _ in KAPPAS])
    kappa = np.tile(np.array(KAPPAS, dtype=np.float64), 18)
    m = len(src)
    success = np.ones(m, dtype=bool)
    success[1] = False
    (data / "attacks").mkdir(parents=True)
    np.savez(data / "attacks/sanitized.npz", cw_adv=rng.random((m, 1, 28, 28), dtype=np.float32), cw_source=src,
             cw_target=tgt, cw_kappa=kappa, cw_success=success, cw_l2=np.where(success, 2.0, np.nan),
             cw_index=np.repeat([11, 42], 9 * len(KAPPAS)), igsm_adv_5=rng.random((4, 1, 28, 28), dtype=np.float32))
    (data / "detect").mkdir(parents=True)
    np.savez(data / "detect/sanitized.npz", cw_kl=rng.exponential(1.0, m), cw_kappa=kappa,
             test_kl=rng.exponential(0.01, 50))
    Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)).save(data / "fonts_preview.png")
    return metrics, data, p


def _headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("## ")]


def test_stage_writes_every_section_and_figure(tmp_path):
    metrics, data, _ = fake_run(tmp_path)
    before = sorted(p.relative_to(metrics) for p in metrics.rglob("*"))
    out = tmp_path / "report"
    cmd = [sys.executable, str(ROOT / "stages/report.py"), "--params", "params.yaml", "--metrics", "metrics",
           "--data", "data", "--out", "report"]  # as dvc.yaml runs it
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("report: wrote") and len(done.stdout.strip().splitlines()) == 1
    text = (out / "report.md").read_text()
    headers = _headers(text)
    assert len(headers) == len(SECTIONS)
    for section, header in zip(SECTIONS, headers):
        assert section in header
    for name in FIGURES:
        assert (out / "figures" / name).stat().st_size > 1000, name
        assert f"figures/{name}" in text
    assert "Not run" not in text
    for paper_number in ("51241", "56435", "33.80", "99.84", "0.0068", "53.3", "2.55"):  # Tables 1, 2, 5, 6; §3.3
        assert paper_number in text
    assert "Table 7" not in text and "Differences from the paper" in text
    curve = (out / "threshold_canonical.csv").read_text().splitlines()
    assert curve[0].startswith("threshold,nines,model,") and "igsm_5" in curve[0]
    assert len(curve) == 3  # header, unsanitized, canonical
    assert sorted(p.relative_to(metrics) for p in metrics.rglob("*")) == before  # the report adds nothing to metrics/


def test_missing_inputs_give_not_run_notes(tmp_path):
    metrics, data, p = fake_run(tmp_path, complete=False)
    out = tmp_path / "report"
    summary = write_report(gather(metrics, data, p), out)
    text = (out / "report.md").read_text()
    assert len(_headers(text)) == len(SECTIONS)
    assert "tables.json is missing" in text
    assert str(data / "attacks/sanitized.npz") in text and str(data / "fonts_preview.png") in text
    assert "99.3" in text and "98.50" in text  # the unsanitized accuracy is still compared
    assert "part(s) not run" in summary
    assert not (out / "figures" / "adversarial_grid.png").exists()
    assert (out / "threshold_self.csv").exists()  # DVC's plot file exists even when empty


def test_svhn_run_shows_tables_3_and_7(tmp_path):
    metrics, data, p = fake_run(tmp_path, dataset="svhn", method="self", threshold=0.9,
                                sweep=(("self", 0.7), ("self", 0.999)))
    out = tmp_path / "report"
    write_report(gather(metrics, data, p), out)
    text = (out / "report.md").read_text()
    assert "**Table 3**" in text and "### Table 7" in text and "### Table 5" not in text
    assert "not applicable to SVHN" in text
    assert "39330" in text and "0.7295" in text and "94.26" in text
    assert "Fig. 10" in text and "Fig. 6" in text
    assert (out / "figures" / "cdf_cw.png").exists()


def test_stale_sweep_folder_is_named_not_used(tmp_path):
    metrics, data, p = fake_run(tmp_path)
    (metrics / "sweep" / "self-0.5").mkdir()
    inp = gather(metrics, data, p)
    assert [m.name for m in inp.sanitized] == ["canonical-0.9999", "self-0.9999999"]
    assert inp.stale_sweep == ["self-0.5"]


def test_missing_metrics_folder_is_an_error(tmp_path):
    p = params.load(_params(tmp_path, dataset="mnist", method="canonical", threshold=0.9999, sweep=[]), *PARAM_KEYS)
    with pytest.raises(FileNotFoundError, match="metrics folder not found"):
        gather(tmp_path / "nope", tmp_path, p)


@pytest.mark.parametrize("gap, large", [
    (Gap("a", 50.0, 54.9, "points"), False), (Gap("a", 50.0, 44.0, "points"), True),
    (Gap("l2", 2.0, 2.9, "ratio"), False), (Gap("l2", 2.0, 3.1, "ratio"), True),
    (Gap("l2", 2.0, 1.2, "ratio"), True), (Gap("l2", 2.0, 0.0, "ratio"), True),
])
def test_gap_marks_large_differences(gap, large):
    assert gap.large is large


def _cw_arrays(sources, targets, kappas):
    rows = [(s, t, k) for s in sources for t in targets if t != s for k in kappas]
    src, tgt, kap = (np.array(c) for c in zip(*rows))
    return {"cw_adv": np.zeros((len(rows), 1, 4, 4), np.float32), "cw_source": src, "cw_target": tgt,
            "cw_kappa": kap.astype(float), "cw_success": np.arange(len(rows)) % 5 != 0}


def test_grid_takes_pairs_from_each_source_in_turn():
    attacks = _cw_arrays([1, 2], [0, 3, 4], [0.0, 1.0])
    cells, cols = grid_cells(attacks, np.arange(len(attacks["cw_kappa"]), dtype=float), rows=3)
    assert cols == ["κ = 0", "κ = 1"]
    captions = [[c[1] for c in row] for row in cells]
    assert [row[0].split("\n")[0] for row in captions] == ["1→0", "2→0", "1→3"]
    assert captions[0][0] == "1→0\ndiv 0\nnot fooled" and captions[0][1] == "1→0\ndiv 1"


def test_grid_rejects_ragged_arrays():
    attacks = _cw_arrays([1], [0, 2], [0.0])
    attacks["cw_target"] = attacks["cw_target"][:1]
    with pytest.raises(ValueError, match="cw_target has 1 rows, cw_adv 2"):
        grid_cells(attacks, None)


def test_template_is_offline_and_fillable():
    html = template.TEMPLATE.read_text(encoding="utf-8")
    assert template.external_references(html) == []
    assert "{plot_divs}" in html and "{scripts}" not in html  # no {scripts}: DVC's CDN tags have nowhere to go
    assert all(f"{name} {version}" in html for name, version, _ in template.BUNDLES)


@pytest.mark.parametrize("js, bad", [("var a='</script>';", "</script"), ("x='<!--'", "<!--"),
                                     ("x='{plot_divs}'", "{plot_divs}")])
def test_template_refuses_a_bundle_it_cannot_inline(js, bad):
    with pytest.raises(ValueError, match=f"bundle contains '{bad}'"):
        template.render([(js, {"name": "vega", "version": "5"}, None)])


def test_dvc_plots_show_is_offline(tmp_path):
    """`dvc plots show` with the repo's plot definitions, CDF template and .dvc/config line writes no external URL."""
    yaml = YAML(typ="safe", pure=True)
    plots = yaml.load((ROOT / "dvc.yaml").read_text())["plots"]
    yaml.dump({"plots": plots}, tmp_path / "dvc.yaml")
    for rel in ("src/cull/plots/offline.html", "src/cull/plots/cdf.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    rng = np.random.default_rng(0)
    for name in ("canonical", "unsanitized", "sanitized"):
        _curve(tmp_path / f"metrics/curves/{name}.csv")
    _csv(tmp_path / "metrics/detect/sanitized_cdf.csv", "set,divergence,value,cdf", _cdf_rows(rng))
    for method in ("canonical", "self"):
        _csv(tmp_path / f"report/threshold_{method}.csv", "threshold,nines,model,igsm_5,igsm_10,igsm_15",
             [(0.0, 0.0, "unsanitized", 0.5, 0.2, 0.1), (0.9999, 4.0, f"{method}-0.9999", 0.8, 0.6, 0.4)])
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    subprocess.run(dvc + ["init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    subprocess.run(dvc + ["config", "plots.html_template", "../src/cull/plots/offline.html"], cwd=tmp_path, check=True)
    subprocess.run(dvc + ["plots", "show", "-o", "plots_out"], cwd=tmp_path, check=True, capture_output=True)
    html = (tmp_path / "plots_out/index.html").read_text(encoding="utf-8")
    assert '<script src="http' not in html
    assert template.external_references(html) == []
    assert html.count("vegaEmbed('#") == len(plots)
    assert template.BUNDLES[0][1] in html


def test_differences_name_the_fast_cw_settings():
    from cull.params import Cw
    from cull.report.gaps import _cw_settings

    fast = _cw_settings(Cw(precision="bfloat16", search_tolerance=0.3))
    assert "bfloat16" in fast and "within 30%" in fast and "cw.search_tolerance=0" in fast
    assert _cw_settings(Cw(precision="float32", search_tolerance=0.0)).startswith("C&W runs the original algorithm")
