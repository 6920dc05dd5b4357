"""What a user plausibly gets wrong, end to end: each case runs a stage script or a `cull` command on a
bad input and asserts one line on stderr, `error: <file or param>: <what is wrong>`, exit code 1 and no
traceback. Then interrupts: SIGINT and SIGTERM give one line and leave no temp file; a kill -9 mid-write
leaves the old output whole, and the next run removes the stray temp file.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cull.artifacts import save_npz
from cull.models import CHECKPOINT_FORMAT, ModelConfig, build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CULL = [sys.executable, "-m", "cull.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop("CULL_DEBUG", None)

GOOD_PARAMS = "threshold: 0.9\nmethod: self\nmodels: {headline: {}}\n"


def stage(name, *args):
    return [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args]


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Good inputs, each case spoils one."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    labels = np.arange(50) % 10
    save_npz(d / "scores.npz", canonical=np.log(rng.uniform(0.5, 1, 50)), self=np.log(rng.uniform(0.5, 1, 50)),
             labels=labels, train_index=np.arange(50))
    torch.manual_seed(0)
    save_checkpoint(d / "model.pt", build_model(ModelConfig()), meta={"role": "unsanitized"})
    (d / "params.yaml").write_text(GOOD_PARAMS)
    (d / "detect.json").write_text(json.dumps({"divergence": "kl", "threshold": 0.5, "normal": {}}))
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(d / "digit.png")
    return d


def _npz(d, name, **arrays):
    save_npz(d / name, **arrays)
    return name


def _write(d, name, data):
    (d / name).write_bytes(data) if isinstance(data, bytes) else (d / name).write_text(data)
    return name


def _checkpoint(d, name, obj):
    torch.save(obj, d / name)
    return name


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _filter(params="params.yaml", scores="scores.npz", model="headline"):
    return stage("filter", "--params", params, "--model", model, "--seed", "0", "--scores", scores, "--out", "o/kept.npz",
                 "--metrics", "o/filter.json")


def _tables(scores):
    return stage("tables", "--params", "params.yaml", "--scores", scores, "--metrics", "o/tables.json")


def _check(*extra, detect="detect.json", model="model.pt", image="digit.png"):
    return CULL + ["check", image, "--unsanitized", model, "--sanitized", model, "--detect-metrics", detect,
                   "--device", "cpu", *extra]


bad_labels = np.arange(50) % 10
bad_labels[3] = -1
nan_self = np.zeros(50)
nan_self[[4, 9]] = np.nan
inf_self = np.zeros(50)
inf_self[7] = np.inf

# (id, setup(d) -> command, the text stderr must name)
CASES = [
    # params files
    ("params-not-utf8", lambda d: CULL + ["params", _write(d, "p1.yaml", b"threshold: 0.9\n# \xb8\n")],
     "p1.yaml: not UTF-8 text"),
    ("params-yaml-syntax", lambda d: CULL + ["params", _write(d, "p2.yaml", "seeds: [0, 1\n")],
     "p2.yaml: not valid YAML (line"),
    ("params-typo-top-level", lambda d: CULL + ["params", _write(d, "p3.yaml", "treshold: 0.9\n")],
     "p3.yaml: treshold: unknown top-level key"),
    ("params-threshold-1.5", lambda d: _filter(_write(d, "p4.yaml", "threshold: 1.5\n")),
     "p4.yaml: threshold: expected a threshold in [0, 1), got 1.5"),
    ("params-threshold-word", lambda d: CULL + ["params", _write(d, "p5.yaml", "threshold: high\n")],
     "p5.yaml: threshold: expected a number"),
    ("params-section-typo", lambda d: CULL + ["params", _write(d, "p6.yaml", "train: {epoch: 3}\n")],
     "p6.yaml: train.epoch: unknown key"),
    ("params-wrong-type", lambda d: CULL + ["params", _write(d, "p7.yaml", "train: {epochs: 2.5}\n")],
     "p7.yaml: train.epochs: expected int, got 2.5"),
    ("params-device", lambda d: CULL + ["params", _write(d, "p8.yaml", "base: {device: gpu}\n")],
     "p8.yaml: base.device: expected one of auto, cpu, cuda"),
    ("params-seeds-empty", lambda d: CULL + ["params", _write(d, "p9.yaml", "seeds: []\n")],
     "p9.yaml: seeds: expected a non-empty list"),
    ("params-seed-twice", lambda d: CULL + ["params", _write(d, "p10.yaml", "seeds: [0, 0]\n")],
     "p10.yaml: seeds: seed 0 is listed twice"),
    ("params-model-twice", lambda d: CULL + ["params", _write(
        d, "p11.yaml", "threshold: 0.9\nmethod: self\nmodels: {headline: {}, b: {method: self, threshold: 0.9}}\n")],
     "p11.yaml: models.b: self ≥ 0.9 is row 'headline' already"),
    ("params-no-headline", lambda d: CULL + ["params", _write(d, "p12.yaml", "models: {b: {method: self, threshold: 0.9}}\n")],
     "p12.yaml: models.headline: missing"),
    ("params-missing-file", lambda d: _filter("nope.yaml"), "nope.yaml: params file not found"),
    ("params-unknown-row", lambda d: _filter(model="self-0.5"), "params.yaml: models: no row 'self-0.5'"),
    ("params-cw-precision", lambda d: CULL + ["params", _write(d, "p13.yaml", "cw: {precision: float16}\n")],
     "p13.yaml: cw.precision: expected one of float32, bfloat16"),
    ("params-acceptance", lambda d: CULL + ["params", _write(d, "p14.yaml", "detect: {acceptance: 98}\n")],
     "p14.yaml: detect.acceptance: expected a value in [0.5, 1.0], got 98"),
    # npz artifacts
    ("npz-corrupt", lambda d: _filter(scores=_write(d, "s1.npz", b"PK\x03\x04 not really a zip")),
     "s1.npz: not a readable .npz archive"),
    ("npz-missing-key", lambda d: _filter(scores=_npz(d, "s2.npz", self=np.zeros(3), labels=np.zeros(3, int))),
     "s2.npz: missing arrays ['canonical']"),
    ("npz-missing-file", lambda d: _filter(scores="s0.npz"), "s0.npz: file not found"),
    ("npz-nan-attacks", lambda d: stage(
        "detect", "--params", "params.yaml", "--unsanitized", "u.pt", "--sanitized", "s.pt",
        "--data", _npz(d, "ds.npz", **{k: np.zeros((2, 1, 28, 28), np.uint8) for k in ("val_x", "test_x", "train_x")},
                       val_y=np.zeros(2, int), test_y=np.zeros(2, int), train_y=np.zeros(2, int)),
        "--kept", _npz(d, "k9.npz", kept=np.arange(2)),
        "--attacks", _npz(d, "a9.npz", igsm_index=np.zeros(1, int), igsm_y=np.zeros(1, int),
                          igsm_adv_5=np.full((1, 1, 28, 28), np.nan, np.float32), cw_index=np.zeros(0, int),
                          cw_source=np.zeros(0, int), cw_kappa=np.zeros(0), cw_adv=np.zeros((0, 1, 28, 28)),
                          cw_success=np.zeros(0, bool)),
        "--out", "o/d.npz", "--metrics", "o/d.json", "--cdf", "o/d.csv"),
     "a9.npz: igsm_adv_5: 784 of 784 values are NaN or inf"),
    ("npz-nan-scores", lambda d: _filter(scores=_npz(d, "s3.npz", canonical=np.zeros(50), self=nan_self,
                                                     labels=np.arange(50) % 10)),
     "s3.npz: self: 2 of 50 scores are NaN or inf"),
    ("npz-inf-scores-tables", lambda d: _tables(_npz(d, "s4.npz", canonical=np.zeros(50), self=inf_self,
                                                     labels=np.arange(50) % 10)),
     "s4.npz: self: 1 of 50 scores are NaN or inf"),
    ("npz-length-mismatch", lambda d: _filter(scores=_npz(d, "s5.npz", canonical=np.zeros(40), self=np.zeros(40),
                                                          labels=np.arange(50) % 10)),
     "s5.npz: self has shape (40,) but labels has 50 entries"),
    ("npz-negative-label", lambda d: _tables(_npz(d, "s6.npz", canonical=np.zeros(50), self=np.zeros(50),
                                                  labels=bad_labels)),
     "s6.npz: labels: expected integer classes in [0, 10), found values from -1"),
    ("npz-dataset-missing", lambda d: stage("train_unsanitized", "--params", "params.yaml", "--seed", "0",
                                            "--data", "none.npz", "--out", "o/m.pt", "--metrics", "o/m.json",
                                            "--curve", "o/c.csv"), "none.npz: file not found"),
    ("cull-sanitize-nan", lambda d: CULL + ["sanitize", _npz(d, "s7.npz", canonical=nan_self, self=np.zeros(50),
                                                             labels=np.arange(50) % 10)],
     "s7.npz: canonical: 2 of 50 scores are NaN or inf"),
    # checkpoints
    ("ckpt-garbage", lambda d: CULL + ["info", _write(d, "c1.pt", b"\x00" * 64)], "c1.pt: not a readable checkpoint"),
    ("ckpt-unknown-arch", lambda d: CULL + ["info", _checkpoint(d, "c2.pt", {
        "format": CHECKPOINT_FORMAT, "config": {"arch": "resnet50", "in_channels": 1}, "state_dict": {}})],
     "c2.pt: unknown arch 'resnet50'"),
    ("ckpt-other-format", lambda d: CULL + ["info", _checkpoint(d, "c3.pt", {"weights": 1})],
     "c3.pt: not a cull checkpoint"),
    ("ckpt-malicious-pickle", lambda d: CULL + ["info", _checkpoint(d, "c4.pt", Evil())],
     "c4.pt: refused to load: it would run code (posix.system)"),
    ("ckpt-raw-pickle", lambda d: CULL + ["info", _write(d, "c7.pt", pickle.dumps(Evil()))],
     "c7.pt: not a readable checkpoint"),
    ("ckpt-missing", lambda d: CULL + ["info", "c0.pt"], "c0.pt: checkpoint not found"),
    ("ckpt-nan-weights", lambda d: CULL + ["info", _checkpoint(d, "c8.pt", {
        "format": CHECKPOINT_FORMAT, "config": {"arch": "cw_mnist", "in_channels": 1},
        "state_dict": {k: v.fill_(float("nan")) if k.endswith("bias") else v
                       for k, v in build_model(ModelConfig()).state_dict().items()}})],
     "c8.pt: 7 of 14 weight tensors hold NaN or inf (first: features.0.bias); retrain this model"),
    ("check-bad-second-model", lambda d: _check(model=_write(d, "c5.pt", b"junk")), "c5.pt: not a readable checkpoint"),
    # metrics read by cull check
    ("check-no-threshold", lambda d: _check(detect=_write(d, "m1.json", json.dumps({"divergence": "kl", "normal": {}}))),
     "m1.json: not a detect stage metrics file"),
    ("check-null-threshold", lambda d: _check(detect=_write(d, "m2.json", json.dumps(
        {"divergence": "kl", "threshold": None, "normal": {}}))), "m2.json: threshold of kl: expected a finite number"),
    ("check-filter-metrics", lambda d: _check(detect=_write(d, "m3.json", json.dumps(
        {"model": "headline", "method": "canonical", "threshold": 0.9999, "size": 10}))),
     "m3.json: not a detect stage metrics file"),
    ("check-not-json", lambda d: _check(detect=_write(d, "m4.json", "{threshold: 1")), "m4.json: not valid JSON"),
    ("check-nan-threshold", lambda d: _check(detect=_write(d, "m5.json", '{"divergence": "kl", "threshold": NaN, "normal": {}}')),
     "m5.json: threshold of kl: expected a finite number"),
    # aggregate and verdicts
    ("verdicts-not-aggregate", lambda d: stage("verdicts", "--aggregate", _write(d, "a1.json", json.dumps({"seeds": [0]})),
                                               "--out", "o/v.json"), "a1.json: not an aggregate metrics file"),
    ("aggregate-missing-seed", lambda d: stage("aggregate", "--params", "params.yaml", "--metrics", "nometrics",
                                               "--out", "o/a.json"), "nometrics/models/unsanitized/seed-0/train.json"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(work, case):
    _, setup, named = case
    result = run(setup(work), work)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert named in lines[0], lines[0]


def test_battery_covers_every_input_kind():
    kinds = {c[0].split("-")[0] for c in CASES}
    assert {"params", "npz", "ckpt", "check"} <= kinds and len(CASES) >= 30


def test_malicious_pickle_names_the_refused_global(work):
    result = run(CULL + ["info", _checkpoint(work, "c6.pt", Evil())], work)
    assert "posix.system" in result.stderr
    assert "pwned" not in result.stdout


def test_a_non_square_image_is_letterboxed_and_says_so(work):
    from PIL import Image

    Image.fromarray(np.zeros((50, 100), np.uint8)).save(work / "wide.png")
    result = run(_check(image="wide.png"), work)
    assert result.returncode == 0, result.stderr
    assert "(letterboxed 100x50 to 28x28)" in result.stdout


def test_truncated_and_foreign_mnist_files_say_so(tmp_path):
    from cull import data

    header = (2051).to_bytes(4, "big") + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with pytest.raises(ValueError, match=r"f: truncated: expected 1584 bytes for IDX shape \(2, 28, 28\), got 100"):
        data.parse_idx(header + bytes(84), name="f", ndim=3)
    with pytest.raises(ValueError, match="f: bad IDX magic number"):
        data.parse_idx(b"\x1f\x8b" + header[2:] + bytes(1568), name="f", ndim=3)


# ---------------------------------------------------------------- interrupts

SLOW_WRITER = """
import sys, time
from cull.artifacts import atomic_path
from cull.runtime import run_stage

def main():
    with atomic_path(sys.argv[2]) as tmp:
        tmp.write_text("partial")
        print("writing", flush=True)
        time.sleep(60)

run_stage(main)
"""


def _start_writer(tmp_path):
    """The slow stage, started on a fresh output that holds "old, whole"; returns once it is mid-write."""
    (tmp_path / "slow_stage.py").write_text(SLOW_WRITER)
    out = tmp_path / "out" / "model.pt"
    out.parent.mkdir()
    out.write_text("old, whole")
    return _restart_writer(tmp_path, out), out


def _restart_writer(tmp_path, out):
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # keeps it ignored; the child gets the default disposition, as a stage started from a terminal has.
    proc = subprocess.Popen([sys.executable, str(tmp_path / "slow_stage.py"), "--out", str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline() == "writing\n"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_is_one_line_and_leaves_no_temp_file(tmp_path, sig):
    proc, out = _start_writer(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err == "interrupted: slow_stage; nothing written\n"
    assert out.read_text() == "old, whole"
    assert [p.name for p in out.parent.iterdir()] == ["model.pt"]


def test_kill_9_keeps_the_old_output_and_the_next_run_cleans_up(tmp_path):
    proc, out = _start_writer(tmp_path)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    stray = [p for p in out.parent.iterdir() if p.name != "model.pt"]
    assert out.read_text() == "old, whole" and len(stray) == 1 and stray[0].name.startswith(".model.pt.")
    proc = _restart_writer(tmp_path, out)
    # the new run's own temp file exists now; the old one must already be gone
    names = sorted(p.name for p in out.parent.iterdir())
    assert len(names) == 2 and stray[0].name not in names, names
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert [p.name for p in out.parent.iterdir()] == ["model.pt"]  # the stale temp went at the next start


def test_stale_temps_inside_a_directory_output_are_removed(tmp_path):
    from cull.runtime import clean_stale_temps

    (tmp_path / "report" / "figures").mkdir(parents=True)
    (tmp_path / "report" / "figures" / ".a.png.x1.tmp").write_text("half")
    (tmp_path / ".report.y.tmp").write_text("half")
    (tmp_path / "report" / "report.md").write_text("whole")
    assert clean_stale_temps(["--out", str(tmp_path / "report")]) == 2
    assert sorted(p.name for p in (tmp_path / "report").rglob("*")) == ["figures", "report.md"]


def test_an_emptied_class_is_one_warning_line(work):
    confidence = np.log(np.where(np.arange(50) % 10 == 3, 0.1, 0.99))  # every 3 falls below the threshold
    save_npz(work / "s8.npz", canonical=confidence, self=confidence, labels=np.arange(50) % 10)
    result = run(_filter(scores="s8.npz"), work)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "warning: threshold 0.9: classes [3] have no examples left after filtering\n"


def test_a_results_folder_is_replaced_whole(tmp_path):
    from cull.artifacts import save_json_dir

    folder = tmp_path / "threats"
    save_json_dir(folder, {"a": {"x": 1}, "b": {"x": 2}})
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "b.json"]
    save_json_dir(folder, {"a": {"x": 3}})  # b is no longer a threat model: its file must not survive
    assert [p.name for p in folder.iterdir()] == ["a.json"] and json.loads((folder / "a.json").read_text()) == {"x": 3}
    with pytest.raises(TypeError):
        save_json_dir(folder, {"a": {"x": 4}, "c": {"x": object()}})  # fails midway: the old folder stays whole
    assert [p.name for p in folder.iterdir()] == ["a.json"] and json.loads((folder / "a.json").read_text()) == {"x": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["threats"]  # no temporary folder left behind
