import pytest

from cull import params
from cull.params import ParamsError


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_defaults_file_loads():
    p = params.load("params.yaml", *params.SECTIONS, *params.SCALARS)
    assert p["threshold"] == 0.9999 and p["method"] == "canonical"
    assert (p["train"].optimizer, p["train"].lr, p["train"].nesterov, p["train"].epochs) == ("sgd", 0.01, True, 16)
    assert p["seeds"] == [0, 1, 2]
    assert [row.name for row in p["models"]][0] == "headline"
    assert p["models"][0] == params.ModelRow("headline", "canonical", 0.9999)
    control = next(row for row in p["models"] if row.method == "random")
    assert (control.like, control.like_method, control.threshold) == ("headline", "canonical", 0.9999)
    assert p["adaptive_models"] == p["alpha_models"] == ["headline", "self-0.9999999"]
    assert p["alpha"].target_accuracy == 0.533 and p["alpha"].reference == 0.05


def test_random_row_follows_the_row_it_mirrors(tmp_path):
    path = write(tmp_path, "threshold: 0.99\nmethod: self\n"
                           "models: {headline: {}, r: {method: random, like: headline}, "
                           "c: {method: canonical, threshold: 0.9}, rc: {method: random, like: c}}\n")
    rows = {r.name: r for r in params.load(path, "models")["models"]}
    assert (rows["r"].threshold, rows["r"].like_method, rows["r"].label) == (0.99, "self", "random (as self ≥ 0.99)")
    assert (rows["rc"].threshold, rows["rc"].like_method) == (0.9, "canonical")
    assert params.load(path, "adaptive_models")["adaptive_models"] == ["headline"]  # the default


def test_defaults_live_in_one_place():
    """Every section of params.yaml equals its dataclass's defaults: the file only writes them out."""
    import dataclasses

    from ruamel.yaml import YAML

    raw = YAML(typ="safe").load(open("params.yaml"))
    for name, cls in params.SECTIONS.items():
        defaults = dataclasses.asdict(cls())
        assert {k: raw[name].get(k) for k in defaults} == defaults, name


@pytest.mark.parametrize("text, match", [
    ("threshold: 1.5\n", r"threshold: expected a threshold in \[0, 1\), got 1.5"),
    ("threshold: -0.1\n", r"threshold: expected a threshold in \[0, 1\)"),
    ("threshold: high\n", r"threshold: expected a number in \[0, 1\), got 'high'"),
    ("method: fonts\n", r"method: expected one of canonical, self, got 'fonts'"),
    ("trian: {epochs: 1}\n", r"trian: unknown top-level key"),
    ("train: {epoch: 1}\n", r"train.epoch: unknown key \(valid keys: arch"),
    ("train: {epochs: two}\n", r"train.epochs: expected int, got 'two'"),
    ("train: {lr: -1}\n", r"train.lr: expected a value in"),
    ("cw: {kappas: [0, -1]}\n", r"cw.kappas: expected non-negative"),
    ("cw: {search_tolerance: 1.5}\n", r"cw.search_tolerance: expected a value in \[0.0, 0.99\], got 1.5"),
    ("cw: {precision: float16}\n", r"cw.precision: expected one of float32, bfloat16, got .float16."),
    ("models: {headline: {}, x: {method: self}}\n", r"models.x.threshold: missing key"),
    ("models: {x: {method: self, threshold: 0.9}}\n", r"models.headline: missing"),
    ("models: {headline: {threshold: 0.9}}\n", r"models.headline: expected \{\} \(set the top-level"),
    ("models: {headline: {}, a: {method: canonical, threshold: 0.9999}}\n",
     r"models.a: canonical ≥ 0.9999 is row 'headline' already; a model is trained once"),
    ("models: {headline: {}, unsanitized: {method: self, threshold: 0.9}}\n", r"row name 'unsanitized'"),
    ("models: {headline: {}, a b: {method: self, threshold: 0.9}}\n", r"row name 'a b'"),
    ("models: [headline]\n", r"models: expected a mapping of row name"),
    ("models: {headline: {}, r: {method: random}}\n",
     r"models.r.like: expected the name of a canonical or self row of models, got None"),
    ("models: {headline: {}, r: {method: random, like: headline, threshold: 0.9}}\n",
     r"models.r.threshold: a random row takes it from the row named in like"),
    ("models: {headline: {}, r: {method: random, like: headline, like_method: self}}\n",
     r"models.r.like_method: a random row takes it from the row named in like"),
    ("models: {headline: {}, r: {method: self, threshold: 0.9, like: headline}}\n",
     r"models.r.like: a random row names the row it mirrors"),
    ("models: {headline: {}, r: {method: random, like: headline}, q: {method: random, like: r}}\n",
     r"models.q.like: expected the name of a canonical or self row of models, got 'r'"),
    ("models: {headline: {}, r: {method: random, like: headline}, q: {method: random, like: headline}}\n",
     r"models.q: random \(as canonical ≥ 0.9999\) is row 'r' already"),
    ("models: {headline: {}, r: {method: fonts, threshold: 0.9}}\n",
     r"models.r.method: expected one of canonical, self, random, got 'fonts'"),
    ("adaptive_models: [nope]\n", r"adaptive_models: 'nope' is not a row of models \(rows: headline\)"),
    ("adaptive_models: headline\n", r"adaptive_models: expected a list of row names of models, got 'headline'"),
    ("adaptive_models: [headline, headline]\n", r"adaptive_models: 'headline' is listed twice"),
    ("alpha_models: [headline, nope]\n", r"alpha_models: 'nope' is not a row of models"),
    ("alpha: {alphas: [0.05, 0.02]}\n", r"alpha.alphas: expected increasing step sizes in \(0, 1\], got \[0.05, 0.02\]"),
    ("alpha: {alphas: []}\n", r"alpha.alphas: expected increasing step sizes"),
    ("alpha: {target_accuracy: 53.3}\n", r"alpha.target_accuracy: expected a value in \[0.0, 1.0\], got 53.3"),
    ("seeds: []\n", r"seeds: expected a non-empty list of non-negative integers"),
    ("seeds: [0, 1, 1]\n", r"seeds: seed 1 is listed twice"),
    ("seeds: [0, -1]\n", r"seeds: expected a non-empty list"),
    ("seeds: 3\n", r"seeds: expected a non-empty list"),
    ("train: {precision: half}\n", r"train.precision: expected one of float32, bfloat16"),
    ("train: [1, 2]\n", r"train: expected a mapping"),
    ("train: {optimizer: adam}\n", r"train.nesterov: needs optimizer sgd with momentum > 0, got adam"),
    ("train: {optimizer: sgd, nesterov: yes please}\n", r"train.nesterov: expected bool, got 'yes please'"),
    ("train: {lr_decay: 2}\n", r"train.lr_decay: expected a value in \[0.0, 1.0\], got 2"),
    ("threshold: [\n", r"not valid YAML \(line 2, column 1: "),
    ("a: 1\n  b: 2\n", r"not valid YAML \(line 2, column 4"),
])
def test_bad_params_give_one_line(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(ParamsError, match=match) as err:
        params.load(path, *params.SECTIONS, *params.SCALARS)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        params.load(tmp_path / "nope.yaml", "train")


def test_only_requested_sections_are_validated(tmp_path):
    path = write(tmp_path, "train: {lr: -1}\nthreshold: 0.5\n")
    assert params.load(path, "threshold") == {"threshold": 0.5}


def test_model_row_label_keeps_all_digits():
    assert params.ModelRow("x", "self", 0.9999999).label == "self ≥ 0.9999999"


def test_headline_row_follows_the_top_level_threshold(tmp_path):
    path = write(tmp_path, "threshold: 0.999\nmethod: self\nmodels: {headline: {}, b: {method: canonical, threshold: 0.9}}\n")
    rows = params.load(path, "models")["models"]
    assert [(r.name, r.method, r.threshold) for r in rows] == [("headline", "self", 0.999), ("b", "canonical", 0.9)]


def test_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"threshold: 0.9\n# caf\xb8\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not UTF-8 text \(byte 0xb8 at offset 20"):
        params.load(path, "threshold")


def test_readme_paper_scale_command_gives_valid_params(tmp_path):
    """The README's paper-scale preset, applied to params.yaml by DVC's own `-S` override parser, validates."""
    import re
    import shlex
    import shutil
    from pathlib import Path

    from dvc.utils.hydra import apply_overrides

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Paper scale"):]
    command = re.search(r"```\n(dvc exp run .*?)\n```", section, re.S).group(1).replace("\\\n", " ")
    words = shlex.split(command)
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
    path = tmp_path / "params.yaml"
    shutil.copy(root / "params.yaml", path)
    apply_overrides(path, overrides)
    p = params.load(path, *params.SECTIONS, *params.SCALARS)
    rows = {r.name: r for r in p["models"]}
    assert len(rows) == 22 and (p["cw"].n, p["igsm"].n) == (15, 10000)
    sanitized = {(r.method, r.threshold) for r in rows.values() if r.method != "random"}
    assert sanitized == {("canonical", t) for t in (0.7, 0.8, 0.9, 0.99, 0.999, 0.9999)} | {
        ("self", t) for t in (0.999, 0.9999, 0.99999, 0.999999, 0.9999999)}  # every Table 4 model
    mirrored = {(r.like_method, r.threshold) for r in rows.values() if r.method == "random"}
    assert mirrored == sanitized  # a random control for every one of them


def _readme_overrides(start: str, command: str) -> list[str]:
    """The `-S` overrides of the first ``` block under README heading `start` that begins with `command`."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(start):]
    block = re.search(r"```\n(" + re.escape(command) + r".*?)\n```", section, re.S).group(1).replace("\\\n", " ")
    words = shlex.split(block)
    return [words[i + 1] for i, w in enumerate(words) if w == "-S"]


def test_readme_cpu_part_of_the_paper_scale_preset_is_what_ran(tmp_path):
    """The README's command for the part of the preset that ran on a CPU, applied to params.yaml by DVC's
    own override parser, gives exactly the params of the run whose results are committed."""
    import shutil
    from pathlib import Path

    from dvc.utils.hydra import apply_overrides

    root = Path(__file__).resolve().parents[1]
    overrides = _readme_overrides("#### The part that ran on a CPU", "python benchmarks/paper_scale.py")
    path = tmp_path / "params.yaml"
    shutil.copy(root / "params.yaml", path)
    apply_overrides(path, overrides)
    keys = (*params.SECTIONS, *params.SCALARS)
    ours = params.load(path, *keys)
    ran = params.load(root / "benchmarks/results/paper_scale/params.yaml", *keys)
    # the run's params.yaml had the first step's table when the second step's overrides were applied, so the
    # rows may stand in another order; a row's name, not its place, names its stages
    by_name = lambda rows: sorted(rows, key=lambda r: r.name)  # noqa: E731
    assert by_name(ours.pop("models")) == by_name(ran.pop("models"))
    assert ours == ran
    assert (ours["cw"].n, ours["igsm"].n, ours["seeds"]) == (15, 10000, [0, 1, 2])
