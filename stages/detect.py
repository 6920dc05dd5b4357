"""Stage detect: KL detection of adversarial examples and the Fig. 9 system (paper §3.4), and the baselines.

Scores normal (validation, test) and adversarial examples by the divergence
between the unsanitized and the sanitized model, and by the baseline detectors
of `detect.baselines` (`cull.detectors`) on the sanitized model, whose
Mahalanobis Gaussians are fitted on its training images (--kept); calibrates
every detector's threshold on validation normals at `detect.acceptance`, and
writes the scores, the metrics (paper Tables 5-7, the detector comparison) and
CDF plot data (Fig. 7, 8, 10).
"""
import argparse

from cull import params
from cull.artifacts import load_npz, save_csv, save_json, save_npz
from cull.detection import (ADVERSARIAL_IMAGES, ATTACK_KEYS, DATA_KEYS, attack_sets, cdf_rows, detection_metrics,
                            score_attacks, summarize)
from cull.detectors import baseline_scores
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--data", required=True, help="dataset .npz (val_x, val_y, test_x, test_y)")
    parser.add_argument("--unsanitized", required=True, help="unsanitized model checkpoint")
    parser.add_argument("--sanitized", required=True, help="sanitized model checkpoint (the attacked one)")
    parser.add_argument("--attacks", required=True, help="attacks .npz made on the sanitized model")
    parser.add_argument("--kept", required=True, help="the sanitized model's kept training indices .npz (filter)")
    parser.add_argument("--out", required=True, help="divergences .npz")
    parser.add_argument("--metrics", required=True, help="metrics .json")
    parser.add_argument("--cdf", required=True, help="CDF plot data .csv")
    args = parser.parse_args()

    p = params.load(args.params, "base", "detect")
    device = pick_device(p["base"].device)
    data = load_npz(args.data, (*DATA_KEYS, "train_x", "train_y"))
    kept = load_npz(args.kept, ("kept",))["kept"]
    attacks = load_npz(args.attacks, ATTACK_KEYS, finite=ADVERSARIAL_IMAGES)
    channels = data["test_x"].shape[1]
    unsanitized, _ = load_checkpoint(args.unsanitized, device, in_channels=channels)
    sanitized, _ = load_checkpoint(args.sanitized, device, in_channels=channels)

    scores = score_attacks(data, attacks, unsanitized=unsanitized, sanitized=sanitized, device=device)
    detect = p["detect"]
    scores.update(baseline_scores(
        sanitized, attack_sets(data, attacks), names=detect.baselines, fit_images=data["train_x"][kept],
        fit_labels=data["train_y"][kept], squeeze_bits=detect.squeeze_bits, squeeze_median=detect.squeeze_median,
        device=device))
    metrics = detection_metrics(scores, acceptance=detect.acceptance, divergence=detect.divergence,
                                baselines=detect.baseline_settings())
    save_npz(args.out, **scores)
    save_json(args.metrics, metrics)
    save_csv(args.cdf, cdf_rows(scores))
    print(summarize(metrics))


if __name__ == "__main__":
    run_stage(main)
