"""Adversarial attacks of the paper (§3.1): IGSM (L-inf, untargeted) and Carlini & Wagner (L2, targeted).

Each attack is a function on one batch of (N, C, H, W) images in [0, 1];
`cull.attacks.run` batches them over a test set and tallies the results.
"""
from cull.attacks.cw import CwResult, cw_l2, target_margin
from cull.attacks.igsm import igsm

__all__ = ["CwResult", "cw_l2", "igsm", "target_margin"]
