"""``digr distill``: train a DIGR student (or, with --no-igr, a distillation-only student)."""

from __future__ import annotations

import argparse

from digr.cli.common import (
    add_parallel,
    add_policy,
    add_task,
    emit,
    eps_value,
    nonneg_int,
    parallel_config,
    pos_int,
    recipe_value,
    resolve_task,
    seed_value,
    thread_count,
)
from digr.cli.fields import add_fields, field_values
from digr.distill.config import DEFAULT_RECIPE, NORMALIZERS, OPTIMIZERS, RECIPES, STUDENT_FLS, DistillConfig

FIELDS = ("alpha", "threshold", "steps", "seed", "use_igr", "igr_normalizer", "igr_topk", "adv_eps",
          "adv_weight", "adv_steps", "adv_project", "student_fls", "student_input_pool", "student_input_blur",
          "student_softplus", "warm_start", "pcgrad", "max_grad_norm", "optimizer", "learning_rate", "lr_anneal",
          "batch_size",
          "buffer_size", "n_envs", "rollout_greedy", "rollout_teacher", "eval_every", "eval_episodes",
          "eval_seed", "checkpoint_every", "log_every")
"""The :class:`DistillConfig` fields that are options of ``digr distill`` (``--threads`` sets
``torch_threads``, ``--recipe`` the recipe)."""

NAME = "distill"
HELP = "train a student by policy distillation with selective input-gradient regularisation (DIGR)"
DESCRIPTION = HELP + """

The student acts in the environment and fills an online state buffer; each update combines
KL(teacher || student) on buffer states with the selective input-gradient penalty (eq. 4) on the
saliency dataset through PCGrad. Settings: the task's Table 3 values, then the --recipe, then any
option given.

Recipes (each the same on every task):
  smooth   the default: the teacher's network with softplus units (beta 50) warm-started from
           its weights; eq. 4 as the share of gradient mass on penalised pixels plus 1 - the
           map's correlation with the teacher's map cut at lambda (mean+pearson); alpha 10; the
           KL also on a state attacked at 16/255 (one MAD step, weight 0.25, projected off the
           clean KL's gradient); greedy rollouts, half of the steps the teacher's; the rate
           decayed to 0.
  relu     the default until session 22 (runs of then record it as "default"): the same with
           the teacher's ReLU units, the attacked KL at 8/255 unprojected, sampled rollouts and
           a constant rate. Its ReLU student masks its own gradient, so attack it through its
           smooth twin (digr evaluate robustness --surrogate-softplus 50).
  paper    Table 3 as printed: the teacher's architecture freshly initialised, eq. 4 with eq. 2's
           max-normalised map, the task's alpha.

Rerunning with the same --out continues from the last checkpoint; the run
folder gets config.json, policy/ (digr checkpoint), resume/ and metrics.jsonl."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy(p, "--teacher", dest="teacher")
    p.add_argument("--dataset", default=None, metavar="DIR",
                   help="the teacher's saliency dataset from 'digr dataset' (not needed with --no-igr)")
    add_task(p, required=False)
    p.add_argument("--out", required=True, help="run folder (created; resumed if it exists)")
    p.add_argument("--recipe", type=recipe_value, default=DEFAULT_RECIPE, metavar="{" + ",".join(RECIPES) + "}",
                   help=f"named settings to start from (default {DEFAULT_RECIPE}; relu: the default until session 22; "
                        "paper: Table 3 as printed)")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="warm start beyond the paper: the student starts from this policy checkpoint's weights "
                        "('teacher': the --teacher checkpoint); it must have the student's architecture or be "
                        "the unpooled network of a --student-input-pool student (first-layer weights folded "
                        "so that the student starts as that network on the block-averaged frame)")
    add_fields(p, DistillConfig, FIELDS, negate=("use_igr", "warm_start", "pcgrad"),
               both=("lr_anneal", "adv_project"),
               flags={"use_igr": "--no-igr"},
               types={"steps": nonneg_int, "seed": seed_value, "adv_eps": eps_value, "adv_steps": pos_int,
                      "igr_topk": pos_int, "student_input_pool": pos_int, "batch_size": pos_int,
                      "buffer_size": pos_int, "n_envs": pos_int, "eval_every": nonneg_int,
                      "eval_episodes": nonneg_int, "eval_seed": seed_value, "checkpoint_every": pos_int,
                      "log_every": pos_int},
               choices={"igr_normalizer": NORMALIZERS, "optimizer": OPTIMIZERS, "student_fls": STUDENT_FLS},
               metavars={"rollout_greedy": "P", "rollout_teacher": "P", "adv_eps": "EPS",
                         "igr_topk": "K", "student_input_pool": "K",
                         "student_input_blur": "SIGMA", "student_softplus": "BETA"})
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch CPU threads for this command (default: digr --torch-threads, 1)")
    p.add_argument("--seeds", type=seed_list, default=None, metavar="S,S,...",
                   help="train one student per seed into OUT/seed-S (each resumable) and write OUT/seeds.json: "
                        "every seed's final statistics and their mean with a 95%% t-interval; the seeds run "
                        "one after the other, or as Ray tasks with --ray / --ray-address / --workers")
    add_parallel(p, what="the seeds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def config_from_args(args: argparse.Namespace):
    """The :class:`~digr.distill.config.DistillConfig` the options ask for (Table 3 defaults of the
    task, then the recipe's, for every option not given)."""
    from digr.envs import get_task

    return DistillConfig.for_task(get_task(args.task), recipe=args.recipe, torch_threads=args.threads,
                                  **field_values(args, FIELDS))


def seed_list(text: str) -> list[int]:
    """``0,1,2``: distinct seeds."""
    try:
        seeds = [seed_value(t.strip()) for t in text.split(",") if t.strip()]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2: {exc}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct seeds like 0,1,2, got {text!r}")
    return seeds


def run(args: argparse.Namespace) -> int:
    from digr.distill.trainer import train_student
    from digr.errors import DigrError

    spec = resolve_task(args, args.teacher)
    cfg = config_from_args(args)
    init = args.teacher if args.init == "teacher" else args.init  # None: the recipe's warm start
    parallel = parallel_config(args)
    if args.seeds is not None:
        from digr.distill.seeds import train_seeds

        if args.seed is not None:
            raise DigrError("give --seed or --seeds, not both")
        result = train_seeds(args.teacher, args.dataset, spec.name, args.out, cfg, args.seeds, init=init,
                             parallel=parallel)
        if args.json:
            emit({"task": spec.name, "out": str(args.out), **result}, as_json=True)
        else:
            for name, s in result["summary"].items():
                print(f"{name:<28} {s['mean']:.4f} +- {s['ci95']:.4f} (n={s['n']})")
        return 0
    if parallel.uses_ray:
        raise DigrError("--ray / --ray-address / --workers spread several seeds: add --seeds")
    stats = train_student(args.teacher, args.dataset, spec.name, args.out, cfg, init=init,
                          show_progress=not args.no_progress and not args.json)
    emit({"task": spec.name, "out": str(args.out), **stats}, as_json=args.json)
    return 0
