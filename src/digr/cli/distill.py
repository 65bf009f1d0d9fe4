"""``digr distill``: train a DIGR student (or, with --no-igr, a distillation-only student)."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_policy,
    add_task,
    emit,
    eps_value,
    nonneg_int,
    pos_int,
    resolve_task,
    seed_value,
    thread_count,
)

NAME = "distill"
HELP = "train a student by policy distillation with selective input-gradient regularisation (DIGR)"
DESCRIPTION = HELP + """

The student acts in the environment and fills an online state buffer; each update combines
KL(teacher || student) on buffer states with the selective input-gradient penalty (eq. 4) on the
saliency dataset through PCGrad. Settings: the task's Table 3 values, then the --recipe, then any
option given.

Recipes:
  default  the teacher's network behind a fixed Gaussian blur of radius/4 pixels (its gradient map
           is smooth, as the perturbation map is), warm-started from the teacher, eq. 4 with
           the mean normaliser (the penalised share of gradient mass), alpha 10, adversarial
           distillation at 8/255 (one MAD step). Same on every task.
  paper    Table 3 as printed: the teacher's architecture freshly initialised, eq. 4 with eq. 2's
           max-normalised map, the task's alpha. Rerunning with the same --out continues from the last checkpoint; the run
folder gets config.json, policy/ (digr checkpoint), resume/ and metrics.jsonl."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p, "--teacher", dest="teacher")
    p.add_argument("--dataset", default=None, metavar="DIR",
                   help="the teacher's saliency dataset from 'digr dataset' (not needed with --no-igr)")
    add_task(p, required=False)
    p.add_argument("--out", required=True, help="run folder (created; resumed if it exists)")
    p.add_argument("--recipe", choices=["default", "paper"], default="default",
                   help="named settings to start from (default: default; paper: Table 3 as printed)")
    p.add_argument("--alpha", type=float, default=None,
                   help="weight of the KL term (eq. 5; default: the recipe's, 10, or with --recipe paper the "
                        "task's Table 3 value)")
    p.add_argument("--threshold", type=float, default=None,
                   help="saliency threshold lambda of eq. 4 (default 0.1)")
    p.add_argument("--steps", type=nonneg_int, default=None, help="total updates (default 3000)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed (default 0)")
    p.add_argument("--no-igr", action="store_true",
                   help="policy distillation only (the paper's baseline), same code path")
    p.add_argument("--igr-normalizer", choices=["max", "mean", "topk", "pearson", "mean+pearson"], default=None,
                   help="normaliser of the student's map inside eq. 4 (default: the recipe's, mean: the "
                        "penalised share of gradient mass; max: eq. 2 literally, --recipe paper; topk: the mean of "
                        "the map's K largest values; pearson: 1 - the map's correlation with the teacher's map cut at the "
                        "threshold; mean+pearson: both terms)")
    p.add_argument("--igr-topk", type=pos_int, default=None, metavar="K",
                   help="K of --igr-normalizer topk (default 64)")
    p.add_argument("--adv-eps", type=eps_value, default=None, metavar="EPS",
                   help="extension beyond the paper: adversarial distillation, KL(teacher(s) || student(s')) "
                        "with s' the MAD attack on the student within this L-inf radius, e.g. 16/255 (default 0: off)")
    p.add_argument("--adv-weight", type=float, default=None,
                   help="weight of the adversarial KL relative to the clean KL (default 1)")
    p.add_argument("--adv-steps", type=pos_int, default=None, help="MAD steps per update (default 5)")
    p.add_argument("--student-fls", choices=["sparse", "sparse-sum", "dense"], default=None,
                   help="FLS + DIGR: the student is the teacher's network with this Free-Lunch Saliency "
                        "variant (default: the teacher's architecture)")
    p.add_argument("--student-input-pool", type=pos_int, default=None, metavar="K",
                   help="student architecture beyond the paper: the teacher's network seeing the frame "
                        "averaged over KxK blocks (first conv's kernel and stride divided by K; default 1: "
                        "the teacher's architecture)")
    p.add_argument("--student-input-blur", type=float, default=None, metavar="SIGMA",
                   help="student architecture beyond the paper: a fixed Gaussian blur of SIGMA pixels in front "
                        "of the teacher's network, so that the student's gradient map is smooth at that scale "
                        "(default: the recipe's, radius/4; 0: none)")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="warm start beyond the paper: the student starts from this policy checkpoint's weights "
                        "('teacher': the --teacher checkpoint); it must have the student's architecture or be "
                        "the unpooled network of a --student-input-pool student (first-layer weights folded "
                        "so that the student starts as that network on the block-averaged frame)")
    p.add_argument("--no-warm-start", action="store_true",
                   help="start the student from a fresh initialisation even where the recipe warm-starts it")
    p.add_argument("--no-pcgrad", action="store_true", help="sum the two gradients instead of PCGrad")
    p.add_argument("--batch-size", type=pos_int, default=None, help="states per batch (default 64)")
    p.add_argument("--learning-rate", type=float, default=None, help="learning rate (Table 3)")
    p.add_argument("--n-envs", type=pos_int, default=None, help="environments the student steps (default 8)")
    p.add_argument("--eval-every", type=nonneg_int, default=None,
                   help="updates between success-rate evaluations (default 500; 0: only at the end)")
    p.add_argument("--eval-episodes", type=nonneg_int, default=None,
                   help="episodes per evaluation (default 50; 0: never)")
    p.add_argument("--checkpoint-every", type=pos_int, default=None,
                   help="updates between checkpoints (default 500)")
    p.add_argument("--log-every", type=pos_int, default=None,
                   help="updates between rows of metrics.jsonl (default 50)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def config_from_args(args: argparse.Namespace):
    """The :class:`~digr.distill.config.DistillConfig` the options ask for (Table 3 defaults of the
    task for every option not given)."""
    from digr.distill.config import DistillConfig
    from digr.envs import get_task

    return DistillConfig.for_task(
        get_task(args.task), recipe=args.recipe, alpha=args.alpha, threshold=args.threshold, steps=args.steps, seed=args.seed,
        use_igr=False if args.no_igr else None,
        igr_normalizer=args.igr_normalizer, igr_topk=args.igr_topk, adv_eps=args.adv_eps, adv_weight=args.adv_weight,
        adv_steps=args.adv_steps, student_fls=args.student_fls,
        student_input_pool=args.student_input_pool, student_input_blur=args.student_input_blur,
        warm_start=False if args.no_warm_start else None, pcgrad=False if args.no_pcgrad else None,
        batch_size=args.batch_size, learning_rate=args.learning_rate, n_envs=args.n_envs,
        eval_every=args.eval_every, eval_episodes=args.eval_episodes,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, torch_threads=args.threads)


def run(args: argparse.Namespace) -> int:
    from digr.distill.trainer import train_student

    spec = resolve_task(args, args.teacher)
    cfg = config_from_args(args)
    init = args.teacher if args.init == "teacher" else args.init  # None: the recipe's warm start
    stats = train_student(args.teacher, args.dataset, spec.name, args.out, cfg, init=init,
                          show_progress=not args.no_progress and not args.json)
    emit({"task": spec.name, "out": str(args.out), **stats}, as_json=args.json)
    return 0
