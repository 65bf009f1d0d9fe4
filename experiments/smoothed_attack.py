"""Is a ReLU policy's robustness its own, or its gradient's? Attack it through a smooth twin.

A ReLU network's input gradient is piecewise constant and zero through every dead unit, so a
gradient attack (MAD, PGD) can stall where the network is not robust at all (gradient masking).
This rolls out ``POLICY`` greedily with every observation attacked, as ``digr evaluate robustness``
does, except that the attack's gradient is taken on the policy's *smooth twin*: the same weights
with every ReLU replaced by ``softplus(beta z) / beta`` (``PolicyConfig.softplus_beta``; the
twin's logits differ from the policy's by at most a few ``ln 2 / beta``). The policy acts on the
attacked observation, so the success rate is the policy's own under that attack (a BPDA-style
check, Athalye et al. 2018). A policy that was already smooth is attacked through itself.

usage: python experiments/smoothed_attack.py POLICY --task T --attack mad --eps 16/255
           [--beta 50] [--episodes 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

import torch

from digr.attacks import check_eps
from digr.evaluation.robustness import evaluate_robustness
from digr.models import load_policy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("policy")
    p.add_argument("--task", required=True)
    p.add_argument("--attack", default="mad")
    p.add_argument("--eps", required=True, help="L-inf radius, e.g. 16/255")
    p.add_argument("--beta", type=float, default=50.0)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    num, _, den = args.eps.partition("/")
    eps = check_eps(float(num) / float(den or 1))
    # The library's own measurement (session 19 onwards: `digr evaluate robustness
    # --surrogate-softplus BETA`); this script keeps the output format of the session-19 records.
    result = evaluate_robustness(load_policy(args.policy, task=args.task), args.task, attack=args.attack,
                                 eps=eps, episodes=args.episodes, seed=args.seed,
                                 surrogate_softplus=args.beta)
    print(json.dumps({"policy": args.policy, "attack": args.attack, "eps_255": round(eps * 255, 3),
                      "gradient_of": f"softplus twin, beta {args.beta:g}",
                      "success_rate": result["success_rate"],
                      "action_flip_rate": round(result["action_flip_rate"], 4),
                      "episodes": args.episodes, "seed": args.seed}))


if __name__ == "__main__":
    main()
