"""Stage attack_adaptive: an attacker who knows the detector (beyond the paper, §4), for every detector.

    python stages/attack_adaptive.py --params params.yaml --seed S --data data/dataset.npz \
        --unsanitized models/unsanitized/seed-S.pt --sanitized models/M/seed-S.pt \
        --detect metrics/models/M/seed-S/detect.json --detect-scores data/models/M/seed-S/detect.npz \
        [--attacks data/models/M/seed-S/attacks.npz] --out data/models/M/seed-S/adaptive.npz \
        --metrics metrics/models/M/seed-S/threats

Reads params threat_models, adaptive, cw and base, and each detector's tau (and
the squeezers' settings) from the detect stage's metrics, the Mahalanobis
Gaussians from its .npz. Runs every threat model of threat_models against the
detector + sanitized classifier system of its detector, with the adaptive
settings; with --attacks, the oblivious threat model's rows (the attack stage's
C&W for the same source images) are rescored under each system. Writes the rows
to --out and, into the folder --metrics, one results file per threat model
(<name>.json, `cull.schema.check_threat_result`), replacing the folder whole.
"""
import argparse

from cull import params
from cull.artifacts import load_json, load_npz, save_json_dir, save_npz
from cull.attacks.adaptive_run import OBLIVIOUS_KEYS, attack_system, summary_line
from cull.attacks.targets import detector_systems
from cull.detection import read_detect_metrics
from cull.detectors import load_gaussians
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage, seed_everything


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    parser.add_argument("--data", required=True, help="dataset .npz with test_x, test_y")
    parser.add_argument("--unsanitized", required=True, help="unsanitized model checkpoint")
    parser.add_argument("--sanitized", required=True, help="sanitized model checkpoint (the system's classifier)")
    parser.add_argument("--detect", required=True, help="detect stage metrics JSON (each detector's threshold)")
    parser.add_argument("--detect-scores", help="detect stage .npz (the Mahalanobis class Gaussians)")
    parser.add_argument("--attacks", help="attack stage .npz for the sanitized model (oblivious C&W rows)")
    parser.add_argument("--out", required=True, help="output .npz of adversarial rows")
    parser.add_argument("--metrics", required=True, help="output folder: one results JSON per threat model")
    args = parser.parse_args(argv)
    p = params.load(args.params, "threat_models", "adaptive", "cw", "base")
    device = pick_device(p["base"].device)
    seed_everything(args.seed)
    adaptive, threats = p["adaptive"], p["threat_models"]
    detect = load_json(args.detect)
    read_detect_metrics(detect, args.detect)  # refuse another kind of file before any model loads
    detectors = [t.detector for t in threats if t.detector is not None]
    gaussians = None
    if "mahalanobis" in detectors:
        if not args.detect_scores:
            raise ValueError("--detect-scores: needed for the mahalanobis detector (threat_models)")
        gaussians = load_gaussians(args.detect_scores)
    data = load_npz(args.data, ("test_x", "test_y"))
    oblivious = load_npz(args.attacks, OBLIVIOUS_KEYS, finite=("cw_adv",)) if args.attacks else None
    channels = data["test_x"].shape[1]
    unsanitized, _ = load_checkpoint(args.unsanitized, device, in_channels=channels)
    sanitized, _ = load_checkpoint(args.sanitized, device, in_channels=channels)
    systems = detector_systems(detectors, unsanitized=unsanitized, sanitized=sanitized, detect=detect,
                               detect_path=args.detect, gaussians=gaussians)
    arrays, results, seconds = attack_system(
        unsanitized, systems, threats, data["test_x"], data["test_y"], adaptive=adaptive, seed=args.seed,
        device=device, oblivious=oblivious, cw=p["cw"],
    )
    save_npz(args.out, **arrays)
    save_json_dir(args.metrics, results)
    print(f"attack_adaptive {args.sanitized}: {summary_line(results, seconds)}")


if __name__ == "__main__":
    run_stage(main)
