"""Stage contracts: each dvc.yaml stage declares the params its script loads and the cull modules it imports.

For every stage, the script named in `cmd` must be a dep; the top-level keys of
its `params:` must equal the sections its script passes to `params.load`
(loading `models` implies `threshold` and `method`, which describe the headline
row); and its `deps:` must cover every module of `src/cull` that the script
imports, directly or through other cull modules. Where a stage names single keys
of a section (`fonts.box`), it must name every field of that section but those
another stage's output already carries (`UNREAD`), so that no param change
leaves a stage's output stale.
"""
import ast
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
STAGES = YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text())["stages"]
IMPLIED = {"models": {"threshold", "method"}}  # params.model_table reads the headline row's top-level keys
RENDER = {"dirs", "sizes", "angles", "deny", "max_faces", "min_legibility", "panose_families", "exclude_ibm_classes",
          "monospace", "box", "stroke"}
# (stage, section) -> the fields of that section the stage does not read, and why; ("*", section): the default
UNREAD = {
    ("*", "base"): {"seed"},  # the data seed: its split is data/dataset.npz, its faces data/fonts.npz
    ("prepare", "base"): {"device"},  # reads the data seed; no model runs
    ("fonts", "base"): {"device"},
    ("canonical", "base"): set(),  # the seed of the fonts' hold-out split
    ("fonts", "fonts"): {"split", "test_fraction"},  # the canonical model's hold-out split
    ("canonical", "fonts"): RENDER,  # the render is data/fonts.npz
    ("canonical", "train"): {"epochs"},  # canonical_epochs instead
    ("unsanitized", "train"): {"canonical_epochs"},
    ("train", "train"): {"canonical_epochs"},
}


def _module_file(module: str) -> Path | None:
    path = SRC.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "cull"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cull":
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
    parents = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}
    return parents


def imported_files(script: Path) -> set[str]:
    """Every src/cull file that importing `script` loads (package __init__ files included)."""
    seen, todo = set(), list(_imports(script))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if (file := _module_file(module)) is not None:
            todo += list(_imports(file))
    files = {_module_file(m) for m in seen} - {None}
    return {str(f.relative_to(ROOT)) for f in files} - {"src/cull/__init__.py"}


def loaded_sections(script: Path) -> set[str]:
    """The keys a stage script passes to `params.load(args.params, ...)`."""
    text = script.read_text()
    calls = re.findall(r"params\.load\(args\.params,\s*([^)]*)\)", text)
    keys = set()
    for call in calls:
        for arg in (a.strip() for a in call.split(",") if a.strip()):
            if arg.startswith("*"):  # a module constant, e.g. *PARAM_KEYS from cull.report
                import cull.report

                keys |= set(getattr(cull.report, arg[1:]))
            else:
                keys.add(ast.literal_eval(arg))
    for key in set(keys):
        keys |= IMPLIED.get(key, set())
    return keys


def _stage(name):
    stage = STAGES[name]
    return stage.get("do", stage)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_its_script_and_every_cull_module_it_imports(name):
    stage = _stage(name)
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    deps = [str(d).rstrip("/") for d in stage["deps"]]
    assert script in deps
    missing = sorted(f for f in imported_files(ROOT / script)
                     if not any(f == d or f.startswith(d + "/") for d in deps))
    assert not missing, f"{name}: deps lack {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_equal_the_sections_its_script_loads(name):
    stage = _stage(name)
    script = ROOT / re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    declared = {str(p).split(".")[0] for p in stage.get("params", [])}
    assert declared == loaded_sections(script), name


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_names_every_field_of_a_section_it_lists_key_by_key(name):
    """`fonts.box` missing from the fonts stage once let `-S fonts.box=20` leave data/fonts.npz unrendered."""
    from dataclasses import fields

    from cull.params import SECTIONS

    declared = [str(p).split(".", 1) for p in _stage(name).get("params", [])]
    for section in sorted({d[0] for d in declared if len(d) == 2}):
        named = {d[1] for d in declared if d[0] == section}
        unread = UNREAD.get((name, section), UNREAD.get(("*", section), set()))
        expected = {f.name for f in fields(SECTIONS[section])} - unread
        assert named == expected, f"{name}: {section} lacks {sorted(expected - named)}, has {sorted(named - expected)}"


def test_every_stage_script_is_used_by_a_stage():
    used = {re.search(r"python (stages/\S+\.py)", _stage(n)["cmd"]).group(1) for n in STAGES}
    assert used == {str(p.relative_to(ROOT)) for p in (ROOT / "stages").glob("*.py")}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_no_stage_turns_its_run_cache_off(name):
    """DVC keeps no run cache for a stage with an uncached plain out (uncached metrics and plots are fine), and
    the run cache is what restores a threshold run before instead of retraining (README, Sharing and scaling)."""
    uncached = [next(iter(o)) for o in _stage(name).get("outs", [])
                if isinstance(o, dict) and next(iter(o.values())).get("cache") is False]
    assert not uncached, f"{name}: uncached outs {uncached}; declare them as metrics or plots"
