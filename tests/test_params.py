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
    assert p["train"].optimizer == "adam"
    assert all(isinstance(item, params.SweepItem) for item in p["sweep"])


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
    ("sweep: [{method: self}]\n", r"sweep\[0\].threshold: missing key"),
    ("train: [1, 2]\n", r"train: expected a mapping"),
    ("threshold: [\n", r"not valid YAML"),
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


def test_sweep_item_name_keeps_all_digits():
    assert params.SweepItem("self", 0.9999999).name == "self-0.9999999"
