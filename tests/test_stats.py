"""Intervals (scipy.stats), the per-seed aggregate and the verdict rules, on small known inputs."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from cull import schema, verdicts
from cull.stats import (aggregate_tree, all_of, bootstrap_mean, paired_difference, seed_slopes, t_interval,
                        verdict_above, wilson)


def test_wilson_matches_scipy_and_handles_no_trials():
    ci = sps.binomtest(9, 27).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(9, 27) == pytest.approx((ci.low, ci.high))
    low, high = wilson(0, 9)  # "0.00%" on 9 examples is an interval that reaches 30%
    assert low == 0.0 and 0.29 < high < 0.31
    assert wilson(0, 0) == (None, None)


def test_bootstrap_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(1).normal(2.0, 0.3, size=40)
    a, b = bootstrap_mean(values), bootstrap_mean(values)
    assert a == b and a[0] < values.mean() < a[1]
    assert bootstrap_mean([2.5, 2.5, 2.5]) == (2.5, 2.5)
    assert bootstrap_mean([1.0]) == (None, None)


def test_t_interval_needs_two_seeds():
    assert t_interval([0.5]) == (None, None)
    low, high = t_interval([1.0, 2.0, 3.0])
    assert (low, high) == pytest.approx(sps.t.interval(0.95, df=2, loc=2.0, scale=sps.sem([1.0, 2.0, 3.0])))


def test_aggregate_pools_counts_samples_and_per_seed_numbers():
    seeds = [
        {"acc": schema.count(8, 10), "l2": schema.sample([1.0, 2.0]), "tau": 1.0, "method": "self",
         "threshold": 0.9, "fractions": [0.25, 0.75]},
        {"acc": schema.count(6, 10), "l2": schema.sample([3.0]), "tau": 3.0, "method": "self",
         "threshold": 0.9, "fractions": [0.5, 0.5]},
    ]
    agg = aggregate_tree(seeds, keep={"threshold"})
    assert agg["acc"]["mean"] == 0.7 and agg["acc"]["n"] == 20 and agg["acc"]["interval"] == "wilson"
    assert agg["acc"]["per_seed"] == [0.8, 0.6] and agg["acc"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert agg["l2"]["mean"] == 2.0 and agg["l2"]["n"] == 3 and agg["l2"]["interval"] == "bootstrap"
    assert agg["tau"]["mean"] == 2.0 and agg["tau"]["seeds"] == 2 and agg["tau"]["interval"] == "t"
    assert agg["method"] == "self" and agg["threshold"] == 0.9  # identity fields stay plain
    assert [f["mean"] for f in agg["fractions"]] == [0.375, 0.625]
    assert all(set(s) == set(schema.STAT_KEYS) for s in (agg["acc"], agg["l2"], agg["tau"]))


def test_aggregate_skips_a_seed_with_nothing_measured():
    agg = aggregate_tree([{"auc": 0.9}, {"auc": None}, {"auc": 0.8}])
    assert agg["auc"]["seeds"] == 2 and agg["auc"]["per_seed"] == [0.9, None, 0.8]
    assert agg["auc"]["hi"] <= 1.0  # a share's t interval is clipped to [0, 1]


def test_paired_difference_and_slopes_run_seed_by_seed():
    a = [schema.count(9, 10), schema.count(9, 10), schema.count(10, 10)]
    b = [schema.count(5, 10), schema.count(6, 10), schema.count(5, 10)]
    d = paired_difference(a, b)
    assert d["per_seed"] == pytest.approx([0.4, 0.3, 0.5]) and d["lo"] > 0
    s = seed_slopes([0.0, 4.0], [b, a])  # two points per seed: slope = difference / 4
    assert s["per_seed"] == pytest.approx([0.1, 0.075, 0.125])


@pytest.mark.parametrize("lo, hi, bound, strict, verdict", [
    (0.1, 0.3, 0.0, True, "REPRODUCED"), (-0.1, 0.3, 0.0, True, "INCONCLUSIVE"),
    (-0.3, -0.1, 0.0, True, "CONTRADICTED"), (0.0, 0.0, 0.0, True, "CONTRADICTED"),
    (0.94, 0.99, 0.94, False, "REPRODUCED"), (0.90, 0.96, 0.94, False, "INCONCLUSIVE"),
    (None, None, 0.0, True, "INCONCLUSIVE"),
])
def test_verdict_rule(lo, hi, bound, strict, verdict):
    s = {"mean": 0.0, "sd": None, "lo": lo, "hi": hi, "n": 3, "seeds": 3, "per_seed": [], "interval": "t"}
    assert verdict_above(s, bound, strict=strict) == verdict


def test_a_claim_is_contradicted_by_any_part_and_reproduced_by_all():
    assert all_of(["REPRODUCED", "REPRODUCED"]) == "REPRODUCED"
    assert all_of(["REPRODUCED", "INCONCLUSIVE"]) == "INCONCLUSIVE"
    assert all_of(["INCONCLUSIVE", "CONTRADICTED"]) == "CONTRADICTED"
    assert all_of([]) == "INCONCLUSIVE"


def _agg_with_cw_detection(k_per_kappa: dict) -> dict:
    cw = {kappa: {"detect": aggregate_tree([schema.count(k, 45) for _ in range(3)]), "auc": None}
          for kappa, k in k_per_kappa.items()}
    model = {"name": "headline", "method": "canonical", "threshold": 0.9999, "label": "canonical ≥ 0.9999",
             "detect": {"cw": cw, "igsm": {}}}
    return {"models": {"headline": model}, "headline": "headline"}


def test_c5_reads_the_wilson_interval_at_every_kappa():
    high = _agg_with_cw_detection({"0": 45, "5": 45})  # 135 of 135: lower bound 0.972
    assert verdicts._c5(high)["verdict"] == "REPRODUCED"
    low = _agg_with_cw_detection({"0": 45, "5": 10})  # 30 of 135 at kappa 5
    claim = verdicts._c5(low)
    assert claim["verdict"] == "CONTRADICTED" and [p["verdict"] for p in claim["numbers"]] == [
        "REPRODUCED", "CONTRADICTED"]
    assert claim["numbers"][1]["n"] == 135


def test_partner_seed_is_the_next_one_cyclically():
    from cull.schema import partner_seed

    assert [partner_seed([0, 1, 2], s) for s in (0, 1, 2)] == [1, 2, 0]
    assert partner_seed([7], 7) is None
    with pytest.raises(ValueError, match="seed 3 is not in seeds"):
        partner_seed([0, 1], 3)


def test_a_threshold_interval_is_clipped_at_zero():
    # tau is a divergence or a distance: with two seeds far apart the t interval would reach below 0
    tau = aggregate_tree([{"threshold": 0.01}, {"threshold": 20.0}])["threshold"]
    assert tau["lo"] == 0.0 and tau["hi"] > 20.0 and tau["interval"] == "t"
    raw = t_interval([0.01, 20.0])
    assert raw[0] < 0 and math.isclose(tau["hi"], raw[1])


def threat_result(name, target, detector, tau, k):
    tally = {"0": {"n": 9, "success_rate": schema.count(k, 9)}}
    systems = {d: {"threshold": tau, "kappas": tally} for d in (detector or ["kl", "squeeze"])}
    return {"threat_model": {"name": name, "attack": "cw" if target == "classifier" else "adaptive", "target": target,
                             "detector": None if target == "classifier" else detector[0], "knows": "x"},
            "attack": {"section": "adaptive", "steps": 5}, "n_sources": 1, "systems": systems}


def test_threat_results_aggregate_per_threat_model_and_refuse_a_mixed_run(tmp_path):
    from cull.aggregate import threats
    from cull.artifacts import save_json_dir

    for seed, (tau, k) in enumerate(((0.5, 3), (1.5, 6))):
        save_json_dir(schema.threat_dir(tmp_path, "headline", seed), {
            "adaptive-kl": threat_result("adaptive-kl", "system", ["kl"], tau, k),
            "oblivious": threat_result("oblivious", "classifier", None, tau, k)})
    agg = threats(tmp_path, "headline", [0, 1])
    assert list(agg) == ["oblivious", "adaptive-kl"]  # the oblivious one first, the rest in file order
    assert agg["adaptive-kl"]["attack"] == {"section": "adaptive", "steps": 5}  # settings kept, not averaged
    rate = agg["adaptive-kl"]["systems"]["kl"]["kappas"]["0"]["success_rate"]
    assert rate["n"] == 18 and rate["mean"] == 0.5 and rate["interval"] == "wilson"
    assert agg["oblivious"]["systems"]["squeeze"]["threshold"]["mean"] == 1.0
    view = schema.systems_of(agg)
    assert set(view) == {"kl", "squeeze"} and set(view["kl"]) == {"threshold", "oblivious", "adaptive"}
    assert set(view["squeeze"]) == {"threshold", "oblivious"}
    save_json_dir(schema.threat_dir(tmp_path, "headline", 1), {
        "oblivious": threat_result("oblivious", "classifier", None, 1.0, 1)})
    with pytest.raises(ValueError, match=r"seed-1/threats: threat models \['oblivious'\] differ from seed 0's"):
        threats(tmp_path, "headline", [0, 1])
    (schema.threat_dir(tmp_path, "headline", 1) / "oblivious.json").write_text('{"systems": {}}')
    with pytest.raises(ValueError, match=r"oblivious.json: not a threat-model results file"):
        threats(tmp_path, "headline", [0, 1])
