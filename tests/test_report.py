"""The report on the real tiny pipeline's aggregate and verdicts, its number formatting, and the offline plots."""
import json
import re

import numpy as np
import pytest
from scipy import stats as sps

from conftest import ROOT, dvc
from cull import params, schema
from cull.plots import template
from cull.plots.figures import grid_cells
from cull.report import PARAM_KEYS, SECTIONS, Gap, gather
from cull.report.inputs import _get
from cull.report.markdown import _num, _pct

FIGURES = ("class_composition.png", "igsm_vs_threshold.png", "cw_l2_vs_threshold.png", "cdf_igsm.png",
           "cdf_cw.png", "training_curves.png", "adversarial_grid.png", "fonts_preview.png", "igsm_alpha_sweep.png",
           "retention_curve.png", "detectors_roc.png")
NUMBER = r"-?\d+(\.\d+)?(e-?\d+)?"
WITH_INTERVAL = re.compile(rf"{NUMBER} \[{NUMBER}, {NUMBER}\]")


def _stat(mean, lo, hi, n=10, seeds=3, interval="wilson"):
    return {"mean": mean, "sd": 0.01, "lo": lo, "hi": hi, "n": n, "seeds": seeds, "per_seed": [mean] * seeds,
            "interval": interval}


# ---------------------------------------------------------------- on the real tiny pipeline


@pytest.mark.slow
def test_report_has_every_section_figure_and_verdict(tiny_repo):
    text = (tiny_repo / "report/report.md").read_text(encoding="utf-8")
    for name in SECTIONS:
        assert name in text, name
    for name in FIGURES:
        assert (tiny_repo / "report/figures" / name).is_file(), name
    verdicts = json.loads((tiny_repo / "metrics/verdicts.json").read_text())
    assert list(verdicts) == ["C1", "C1c"] + [f"C{i}" for i in range(2, 11)]
    for cid, v in verdicts.items():
        assert v["verdict"] in schema.VERDICTS
        assert re.search(rf"\| {cid} \| .* \| \*\*{v['verdict']}\*\* \|", text), cid
    assert text.index("## Verdicts") < text.index("## 1. Run context")  # near the top
    selection = json.loads((ROOT / "benchmarks/results/canonical_selection.json").read_text())
    assert "**Canonical face selections.**" in text
    for name, c in selection["candidates"].items():  # each candidate at its closest epoch, as the harness measured
        e = next(e for e in c["curve"] if e["epoch"] == c["closest_epoch"])
        assert re.search(rf"\| `{re.escape(name)}` \| [^|]+ \| {c['fonts']['faces_kept']} \| {e['epoch']} \| "
                         rf"{100 * e['pool_acc']['mean']:.2f} \|", text), name


@pytest.mark.slow
def test_every_ours_number_carries_its_interval_and_n(tiny_repo):
    text = (tiny_repo / "report/report.md").read_text(encoding="utf-8")
    headline = text[text.index("## 2. Headline numbers"):text.index("## 3.")]
    measured = [line for line in headline.splitlines() if line.startswith("| ") and "not run" not in line
                and not line.startswith("| quantity") and "| — |" not in line]
    assert measured
    for line in measured:
        ours = line.rstrip(" |").rsplit(" | ", 1)[1]
        if ours.endswith("(n=1)"):  # one example (a tiny C&W run) has no interval; the n says so
            assert re.fullmatch(rf"{NUMBER} \(n=1\)", ours), line
            continue
        assert WITH_INTERVAL.match(ours) and "(n=" in ours, line
    table5 = text[text.index("### Table 5"):text.index("### Table 6")]
    igsm = [line for line in table5.splitlines() if line.startswith("| IGSM")]
    assert igsm and all(len(WITH_INTERVAL.findall(line)) == 2 and "(n=120)" in line for line in igsm)
    composition = text[text.index("## 4. Class composition"):text.index("## 5.")]
    digits = [line for line in composition.splitlines() if re.match(r"\| \d \|", line)]
    assert len(digits) == 10 and all(len(WITH_INTERVAL.findall(line)) == 2 for line in digits)
    steps = text[text.index("### The IGSM step size, calibrated"):text.index("## 6.")]
    sweep = [line for line in steps.splitlines() if re.match(r"\| 0\.\d+ \|", line)]
    assert len(sweep) == 4 and all(len(WITH_INTERVAL.findall(line)) == 3 and "(n=120)" in line for line in sweep)
    fig4 = [line for line in steps.splitlines() if re.match(r"\| (unsanitized|canonical ≥ 0.9) \| (calibrated|reference)", line)]
    assert len(fig4) == 4 and all(len(WITH_INTERVAL.findall(line)) >= 3 for line in fig4)
    adaptive = text[text.index("## 12. Adaptive attacker"):]
    assert adaptive.count("\n| canonical ≥ 0.9 |") >= 2 and adaptive.count("\n| self ≥ 0.99 |") >= 2
    assert "Adaptive attack not run" not in adaptive


@pytest.mark.slow
def test_aggregate_pools_every_seed_with_scipy_intervals(tiny_repo):
    agg = json.loads((tiny_repo / "metrics/aggregate.json").read_text())
    per_seed = [json.loads((tiny_repo / f"metrics/models/headline/seed-{s}/train.json").read_text()) for s in (0, 1)]
    k, n = (sum(t["test_acc"][f] for t in per_seed) for f in ("k", "n"))
    acc = agg["models"]["headline"]["train"]["test_acc"]
    ci = sps.binomtest(k, n).proportion_ci(method="wilson")
    assert acc["interval"] == "wilson" and acc["n"] == n == 600 and acc["mean"] == k / n
    assert (acc["lo"], acc["hi"]) == pytest.approx((ci.low, ci.high))
    assert acc["per_seed"] == [t["test_acc"]["rate"] for t in per_seed]
    taus = [json.loads((tiny_repo / f"metrics/models/headline/seed-{s}/detect.json").read_text())["threshold"]
            for s in (0, 1)]
    tau = agg["models"]["headline"]["detect"]["threshold"]
    low, high = sps.t.interval(0.95, df=1, loc=np.mean(taus), scale=sps.sem(taus))
    low = max(low, 0.0)  # tau is a divergence: its interval is clipped at 0
    assert tau["interval"] == "t" and tau["seeds"] == 2 and (tau["lo"], tau["hi"]) == pytest.approx((low, high))
    l2 = agg["models"]["unsanitized"]["attack"]["cw"]["0"]["mean_l2"]
    assert l2["interval"] == "bootstrap"
    diff = agg["effects"]["vs_unsanitized"]["headline"]["igsm_acc"]["5"]
    per = [json.loads((tiny_repo / f"metrics/models/{m}/seed-{s}/attack.json").read_text())["igsm"]["5"]["acc"]["rate"]
           for m in ("headline", "unsanitized") for s in (0, 1)]
    assert diff["per_seed"] == pytest.approx([per[0] - per[2], per[1] - per[3]])


@pytest.mark.slow
def test_detectors_compared_on_the_same_examples(tiny_repo):
    per_seed = [json.loads((tiny_repo / f"metrics/models/headline/seed-{s}/detect.json").read_text()) for s in (0, 1)]
    control = [json.loads((tiny_repo / f"metrics/models/two-seed/seed-{s}/detect.json").read_text()) for s in (0, 1)]
    compared = json.loads((tiny_repo / "metrics/aggregate.json").read_text())["effects"]["detectors"]["headline"]
    assert compared["names"] == ["kl", "reverse", "js", "squeeze", "mahalanobis", "two-seed"]
    for d in per_seed:  # every detector counts the same examples per setting
        for attack in ("igsm", "cw"):
            for k, row in d[attack].items():
                assert {b[attack][k]["n"] for b in d["baselines"].values()} == {row["n"]}

    def mean_auc(rows):
        aucs = [r["auc"] for a in ("igsm", "cw") for r in rows[a].values() if r["auc"] is not None]
        return sum(aucs) / len(aucs)

    for name, rows_of in (("kl", lambda d: d), ("squeeze", lambda d: d["baselines"]["squeeze"]),
                          ("mahalanobis", lambda d: d["baselines"]["mahalanobis"])):
        assert compared["mean_auc"][name]["per_seed"] == pytest.approx([mean_auc(rows_of(d)) for d in per_seed])
    assert compared["mean_auc"]["two-seed"]["per_seed"] == pytest.approx([mean_auc(c) for c in control])
    kl_minus = compared["kl_minus"]["squeeze"]["per_seed"]
    assert kl_minus == pytest.approx([mean_auc(d) - mean_auc(d["baselines"]["squeeze"]) for d in per_seed])
    means = {n: s["mean"] for n, s in compared["mean_auc"].items()}
    assert compared["best"] == max(means, key=means.get)
    text = (tiny_repo / "report/report.md").read_text(encoding="utf-8")
    section = text[text.index("### Detectors compared"):]
    section = section[:section.index("\n## ")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| detector")]
    assert len(rows) == 6 * 5  # six detectors x (IGSM 5/10/15 + C&W at two kappas)
    detection = [line.split(" | ")[2] for line in rows]
    measured = [cell for cell in detection if cell != "—"]  # "—": a C&W kappa with no successful example
    assert measured and all(WITH_INTERVAL.match(cell) and "(n=" in cell for cell in measured), detection
    assert "**Best detector on canonical ≥ 0.9: " in section and "claim C10:" in section


@pytest.mark.slow
def test_report_refuses_a_stale_aggregate(tiny_repo, tmp_path):
    p = params.load(tiny_repo / "params.yaml", *PARAM_KEYS)
    p = {**p, "seeds": [0, 1, 2]}
    with pytest.raises(ValueError, match=r"aggregate.json: written for seeds \[0, 1\].*run dvc repro"):
        gather(tiny_repo / "metrics/aggregate.json", tiny_repo / "metrics/verdicts.json", tiny_repo / "metrics",
               tiny_repo / "data", p)
    (tmp_path / "a.json").write_text(json.dumps({"threshold": 0.9999}))
    with pytest.raises(ValueError, match="a.json: not an aggregate metrics file"):
        gather(tmp_path / "a.json", tiny_repo / "metrics/verdicts.json", tiny_repo / "metrics", tiny_repo / "data", p)


@pytest.mark.slow
def test_report_shows_the_retention_curve(tiny_repo, tmp_path):
    text = (tiny_repo / "report/report.md").read_text(encoding="utf-8")
    sizes = text[text.index("**Retention vs epochs.**"):text.index("## 4.")]
    curve = json.loads((tiny_repo / "benchmarks/results/retention.json").read_text())
    rows = [line for line in sizes.splitlines() if re.match(r"\| (\*\*)?\d+(\*\*)? \|", line)]
    assert len(rows) == len(curve["curve"]) and f"| **{curve['closest_epoch']}** |" in sizes
    assert all(len(WITH_INTERVAL.findall(line)) == 1 + len(curve["thresholds"]) for line in rows)
    assert "This run's training recipe differs from the curve's" in sizes  # the tiny params train with Adam
    p = params.load(tiny_repo / "params.yaml", *PARAM_KEYS)
    (tmp_path / "r.json").write_text(json.dumps({"curve": []}))
    with pytest.raises(ValueError, match=r"r.json: not a retention curve of benchmarks/retention_curve.py \(missing "
                                         r"recipe, precision"):
        gather(tiny_repo / "metrics/aggregate.json", tiny_repo / "metrics/verdicts.json", tiny_repo / "metrics",
               tiny_repo / "data", p, retention=tmp_path / "r.json")


@pytest.mark.slow
def test_dvc_plots_show_is_offline(tiny_repo):
    """`dvc plots show` with the repo's plot definitions, CDF template and html template writes no external URL."""
    dvc(tiny_repo, "config", "plots.html_template", "../src/cull/plots/offline.html")
    dvc(tiny_repo, "plots", "show", "-o", "plots_out")
    html = (tiny_repo / "plots_out/index.html").read_text(encoding="utf-8")
    assert '<script src="http' not in html
    assert template.external_references(html) == []
    assert template.BUNDLES[0][1] in html


# ---------------------------------------------------------------- formatting and the marked-difference test


def test_a_stat_prints_mean_interval_and_n():
    s = _stat(0.9274, 0.9241, 0.9305, n=30000)
    assert _pct(s) == "92.74 [92.41, 93.05] (n=30000)"
    assert _pct(s, n=False) == "92.74 [92.41, 93.05]"
    assert _num(_stat(6.89, 5.1, 8.7, n=3, interval="t"), ".3g") == "6.89 [5.1, 8.7] (n=3)"
    assert _num(_stat(6.89, None, None, n=1, seeds=1, interval="t")) == "6.89 (n=1)"  # one seed: no interval
    assert _pct(None) == "—" and _pct(_stat(None, None, None, n=0)) == "—"


@pytest.mark.parametrize("gap, large", [
    (Gap("a", 50.0, 52.0, 46.0, 58.0, "points"), False),  # paper inside our interval
    (Gap("a", 50.0, 58.0, 54.5, 60.0, "points"), False),  # outside, but within 5 points of the interval
    (Gap("a", 50.0, 60.0, 56.0, 64.0, "points"), True),
    (Gap("a", 50.0, 56.0, None, None, "points"), True),  # one seed: the mean stands in
    (Gap("l2", 2.0, 2.9, 2.5, 3.2, "ratio"), False), (Gap("l2", 2.0, 3.5, 3.1, 3.9, "ratio"), True),
    (Gap("l2", 2.0, 1.2, 1.1, 1.3, "ratio"), True), (Gap("l2", 2.0, 0.0, 0.0, 0.0, "ratio"), True),
])
def test_gap_compares_the_paper_with_our_interval(gap, large):
    assert gap.large is large


def test_get_never_guesses_a_layout():
    assert _get({"a": {"b": None}}, "a", "b", "c") is None  # the aggregate holds None: nothing measured
    with pytest.raises(KeyError):
        _get({"a": {}}, "a", "b")


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


def test_differences_name_the_fast_cw_settings():
    from cull.params import Cw
    from cull.report.gaps import _cw_settings

    fast = _cw_settings(Cw(precision="bfloat16", search_tolerance=0.3))
    assert "bfloat16" in fast and "within 30%" in fast and "cw.search_tolerance=0" in fast
    assert _cw_settings(Cw(precision="float32", search_tolerance=0.0)).startswith("C&W runs the original algorithm")
