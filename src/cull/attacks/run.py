"""Run the attacks over a test set: seeded choice of images, batching with tqdm, tallies.

Notation: n attacked test images; for C&W each source image is attacked
towards each of the K - 1 other classes at each kappa, M = n (K - 1) len(kappas)
rows, in source-major, then target, then kappa order. Images come in as
(N, C, H, W) uint8 and go out as float32 in [0, 1].
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from cull.attacks._checks import check_model, check_test_set
from cull.attacks.cw import CW
from cull.attacks.igsm import igsm as igsm_attack
from cull.models import to_float
from cull.params import Cw, Igsm
from cull.schema import count_of, sample
from cull.training import predict_logits

IGSM_BATCH = 500  # images per IGSM batch
CW_BATCH = 1024  # C&W rows per batch; large, since examples that abort early leave the batch
IGSM_STREAM, CW_STREAM = 0, 1  # independent seeded choices: changing igsm.n leaves the C&W images alone


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """The model with its conv weights in channels-last layout (in place; values unchanged).

    oneDNN then runs the convolutions' forward and input gradient in NHWC, about
    1.1x faster for the C&W attack on 2 CPU cores in float32 and 1.2x in
    bfloat16. Training gains nothing from it (benchmarks/bench_training.py
    --variants), so only the attacks use it. Results move within float32
    rounding (a different summation order).
    """
    return model.to(memory_format=torch.channels_last)


def choose(candidates: np.ndarray, n: int, *, seed: int, stream: int, what: str) -> np.ndarray:
    """Seeded choice of `n` of the index array `candidates`, returned sorted.

    The first n of one seeded permutation, so a larger n keeps the smaller n's images.
    """
    candidates = np.asarray(candidates)
    if n > len(candidates):
        raise ValueError(f"{what}: asked for {n} images, only {len(candidates)} available")
    perm = np.random.default_rng([seed, stream]).permutation(candidates)
    return np.sort(perm[:n])


def run_igsm(model, images: np.ndarray, labels: np.ndarray, *, igsm: Igsm, device, batch: int = IGSM_BATCH) -> dict:
    """IGSM on every image of (n, C, H, W) uint8 `images` with (n,) `labels`.

    Returns {"clean_pred": (n,), "adv": {k: (n, C, H, W) float32}, "pred": {k: (n,)}}.
    The tqdm postfix shows the running success rate (misclassified) at max(k).
    """
    ks = sorted(set(igsm.iterations))
    adv = {k: [] for k in ks}
    pred = {k: [] for k in ks}
    fooled = done = 0
    bar = tqdm(total=len(images), desc="igsm", unit="img", mininterval=1.0)
    for start in range(0, len(images), batch):
        x = to_float(torch.as_tensor(images[start : start + batch]).to(device))
        y = torch.as_tensor(labels[start : start + batch], dtype=torch.long).to(device)
        out = igsm_attack(model, x, y, eps=igsm.eps, alpha=igsm.alpha, iterations=ks)
        for k in ks:
            with torch.no_grad():
                pred[k].append(model(out[k]).argmax(1).cpu().numpy())
            adv[k].append(out[k].float().cpu().numpy())
        fooled += int((pred[ks[-1]][-1] != labels[start : start + batch]).sum())
        done += len(y)
        bar.update(len(y))
        bar.set_postfix(success=f"{fooled / done:.3f}")
    bar.close()
    return {
        "clean_pred": predict_logits(model, images, device=device).argmax(1).numpy(),
        "adv": {k: np.concatenate(adv[k]) for k in ks},
        "pred": {k: np.concatenate(pred[k]) for k in ks},
    }


def cw_rows(index: np.ndarray, labels: np.ndarray, kappas: list[float], num_classes: int) -> dict:
    """Expand n sources into M rows: each source x each other class x each kappa."""
    rows = [
        (i, y, t, k)
        for i, y in zip(index, labels)
        for t in range(num_classes)
        if t != y
        for k in kappas
    ]
    i, y, t, k = (np.array(col) for col in zip(*rows))
    return {"cw_index": i.astype(np.int64), "cw_source": y.astype(np.int64),
            "cw_target": t.astype(np.int64), "cw_kappa": k.astype(np.float64)}


class SearchProgress:
    """A tqdm bar over the search steps of M rows attacked in batches, with the running rate of a goal.

    Pass `step` as the attack's on_search_step(step, hits) and call `batch_done`
    after each batch; the postfix shows the share of rows that met the goal so far.
    """

    def __init__(self, m: int, batch: int, search_steps: int, *, desc: str, goal: str):
        self.bar = tqdm(total=-(-m // batch) * search_steps, desc=desc, unit="search step", mininterval=1.0)
        self.goal, self.done, self.hits = goal, 0, 0  # rows finished, and those that met the goal, in earlier batches

    def step(self, step: int, hits: torch.Tensor) -> None:  # hits: (batch,) bool, goal met so far in this batch
        self.bar.update(1)
        self.bar.set_postfix({self.goal: f"{(self.hits + int(hits.sum())) / (self.done + len(hits)):.3f}"})

    def batch_done(self, rows: int, hits: int) -> None:
        self.done, self.hits = self.done + rows, self.hits + hits

    def close(self) -> None:
        self.bar.close()


def run_rows(attack, target, images: np.ndarray, rows: dict, *, device, search_steps: int, desc: str,
             score=None, also: dict | None = None, batch: int = CW_BATCH) -> dict:
    """The one runner: `attack` (a callable params section, `cull.attacks.cw.CW` or
    `cull.attacks.adaptive.AdaptiveCW`) on `target` for `rows` (from `cw_rows`); `images`
    (N, C, H, W) uint8 is indexed by rows["cw_index"].

    Returns (M,) arrays ``success`` (the attack's own goal), ``l2`` (float64, NaN where failed) and
    ``adv`` (M, C, H, W) float32 (the clean image where failed). `score`, if given, is called per batch
    as score(result, targets) -> {name: (B,) tensor} and its arrays replace or join these (the adaptive
    stage passes a system's `cull.attacks.adaptive.evaluate`: ``found``, ``success`` = fools the system,
    ``score``, ``accepted``, ``pred``); with `also`, name -> model, each model's class is ``<name>_pred``.
    The tqdm bar counts search steps; its postfix shows the running rate of the attack's goal.
    """
    parts: dict[str, list] = {}
    m = len(rows["cw_index"])
    progress = SearchProgress(m, batch, search_steps, desc=desc, goal="found" if score is not None else "success")
    for start in range(0, m, batch):
        part = slice(start, start + batch)
        x = to_float(torch.as_tensor(images[rows["cw_index"][part]]).to(device))
        targets = torch.as_tensor(rows["cw_target"][part]).to(device)
        res = attack(target, x, torch.as_tensor(rows["cw_source"][part]).to(device), targets,
                     kappa=torch.as_tensor(rows["cw_kappa"][part], dtype=x.dtype).to(device),
                     on_search_step=progress.step)
        out = {"adv": res.images.float(), "success": res.success, "l2": res.l2.double()}
        if score is not None:
            out.update(score(res, targets))
        with torch.no_grad():
            for name, model in (also or {}).items():
                out[f"{name}_pred"] = model(res.images).argmax(1)
        for key, value in out.items():
            parts.setdefault(key, []).append(value.cpu().numpy())
        progress.batch_done(len(x), int(res.success.sum()))
    progress.close()
    return {key: np.concatenate(value) for key, value in parts.items()}


def run_cw(model, images: np.ndarray, rows: dict, *, cw: Cw, device, batch: int = CW_BATCH) -> dict:
    """C&W L2 with the settings `cw` on `model` for `rows` (`run_rows`), as the attack stage stores it:
    {"cw_adv": (M, C, H, W) float32 (the clean image where failed), "cw_success": (M,) bool,
    "cw_l2": (M,) float64, NaN where failed}."""
    out = run_rows(CW.of(cw), model, images, rows, device=device, search_steps=cw.search_steps, desc="cw",
                   batch=batch)
    return {f"cw_{key}": out[key] for key in ("adv", "success", "l2")}


def tally(arrays: dict, *, iterations: list[int], kappas: list[float]) -> dict:
    """Metrics from the arrays of `attack_model` as `cull.schema` leaves.

    ``clean_acc`` and ``igsm.<k>.acc`` count the attacked images classified right;
    ``cw.<kappa>.success_rate`` counts the rows at that kappa that succeeded and
    ``cw.<kappa>.mean_l2`` is the sample of their L2 distortions.
    """
    y = arrays["igsm_y"]
    cw_kappa, success, l2 = arrays["cw_kappa"], arrays["cw_success"], arrays["cw_l2"]
    per_kappa = {}
    for k in kappas:
        rows = cw_kappa == float(k)
        ok = success[rows]
        per_kappa[str(k)] = {"success_rate": count_of(ok), "mean_l2": sample(l2[rows][ok])}
    return {
        "clean_acc": count_of(arrays["igsm_clean_pred"] == y),
        "igsm": {str(k): {"acc": count_of(arrays[f"igsm_pred_{k}"] == y)} for k in sorted(set(iterations))},
        "cw": per_kappa,
        "n_igsm": int(len(y)),
        "n_cw": int(len(np.unique(arrays["cw_index"]))),
    }


def attack_model(
    model, test_x: np.ndarray, test_y: np.ndarray, *, igsm: Igsm, cw: Cw, seed: int, device
) -> tuple[dict, dict]:
    """Both attacks on one model: IGSM on igsm.n seeded test images (correct or not),
    C&W on cw.n seeded correctly classified ones, towards every other class at every kappa.

    Returns (arrays for the stage's .npz, metrics for its JSON, seconds per attack).
    """
    check_model(model)
    test_y = check_test_set(test_x, test_y)
    model = channels_last(model)
    clock = time.perf_counter()
    index = choose(np.arange(len(test_y)), igsm.n, seed=seed, stream=IGSM_STREAM, what="igsm.n")
    out = run_igsm(model, test_x[index], test_y[index], igsm=igsm, device=device)
    arrays = {"igsm_index": index, "igsm_y": test_y[index], "igsm_clean_pred": out["clean_pred"]}
    for k in out["adv"]:
        arrays[f"igsm_adv_{k}"], arrays[f"igsm_pred_{k}"] = out["adv"][k], out["pred"][k]
    seconds_igsm = time.perf_counter() - clock

    clock = time.perf_counter()
    logits = predict_logits(model, test_x, device=device)
    correct = np.flatnonzero(logits.argmax(1).numpy() == test_y)
    index = choose(correct, cw.n, seed=seed, stream=CW_STREAM, what="cw.n (correctly classified test images)")
    rows = cw_rows(index, test_y[index], cw.kappas, logits.shape[1])
    arrays.update(rows)
    arrays.update(run_cw(model, test_x, rows, cw=cw, device=device))
    seconds_cw = time.perf_counter() - clock

    metrics = tally(arrays, iterations=igsm.iterations, kappas=cw.kappas)
    # Timings stay out of the metrics, so that the same params give the same artifacts.
    return arrays, metrics, {"igsm": seconds_igsm, "cw": seconds_cw}


def summary_line(metrics: dict, seconds: dict) -> str:
    igsm = " ".join(f"{k}:{v['acc']['rate']:.3f}" for k, v in metrics["igsm"].items())
    cw = " ".join(
        f"{k}:{v['success_rate']['rate']:.2f}/" + ("-" if v["mean_l2"]["mean"] is None else f"{v['mean_l2']['mean']:.3f}")
        for k, v in metrics["cw"].items()
    )
    return (
        f"clean acc {metrics['clean_acc']['rate']:.3f} on {metrics['n_igsm']} | IGSM acc by steps {igsm} | "
        f"C&W on {metrics['n_cw']} success/mean L2 by kappa {cw} | "
        f"{seconds['igsm']:.0f}s + {seconds['cw']:.0f}s"
    )
