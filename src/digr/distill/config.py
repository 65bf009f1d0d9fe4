"""DIGR settings; per-task defaults are the paper's Table 3 (``TaskSpec.distill``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from digr.errors import DigrError, check_int, check_softplus_beta

OPTIMIZERS = ("adam", "rmsprop")
"""Optimisers of Table 3."""
NORMALIZERS = ("max", "mean", "topk", "pearson", "mean+pearson")
"""Forms of eq. 4's term (:func:`digr.distill.losses.selective_penalty` implements each)."""
STUDENT_FLS = ("sparse", "sparse-sum", "dense")
"""FLS student variants: :data:`digr.models.fls.VARIANTS`, repeated here so that the CLI builds its
options without importing torch (a test keeps the two equal)."""

RESUMABLE_FIELDS = frozenset({"steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every",
                              "torch_threads"})
"""Fields that may change when a run folder is resumed; all others must match ``config.json``."""


RECIPES = ("smooth", "relu", "paper")
"""Named DIGR recipes (:func:`recipe_settings`); the first, :data:`DEFAULT_RECIPE`, is the default."""
DEFAULT_RECIPE = "smooth"
"""The recipe ``digr distill``, ``digr pipeline`` and :meth:`DistillConfig.for_task` use unless told
otherwise (since session 22; the rule that chose it is in ``results/recipe-ablation.md``)."""
RECIPE_ALIASES = {"default": "relu"}
"""Names a recipe had before: runs recorded before session 22 call the ``relu`` recipe
``"default"``. Such records still load and are reported under the current name; the CLI no longer
offers the old one."""

LARGEST_ATTACK_EPS = 16 / 255
"""The largest radius of the robustness sweep (:data:`digr.evaluation.robustness.DEFAULT_EPS`,
repeated here so that the CLI builds its options without importing torch; a test keeps the two
equal): the ``smooth`` recipe's adversarial radius, so that the student is distilled at the radius
it is judged at, on every task."""


def check_recipe(recipe: Any) -> str:
    """``recipe`` if it names a recipe of :data:`RECIPES` (or an old name of one,
    :data:`RECIPE_ALIASES`), else :class:`DigrError` listing them."""
    if recipe not in RECIPES and recipe not in RECIPE_ALIASES:
        raise DigrError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    return recipe


def recipe_name(recipe: str) -> str:
    """The current name of ``recipe`` (an old name of :data:`RECIPE_ALIASES` maps to its new one)."""
    return RECIPE_ALIASES.get(check_recipe(recipe), recipe)


def recipe_settings(recipe: str, spec) -> dict[str, Any]:
    """The settings a named recipe adds to the task's Table 3 values (``spec.distill``). No setting
    depends on the task: every recipe is the same on every task.

    * ``"smooth"`` (the default, :data:`DEFAULT_RECIPE`): ``"relu"`` below, plus

      - a student with softplus units (``student_softplus`` 50, parameter-free, so it still
        warm-starts): its input gradient has the second derivative eq. 4 needs (the only lever
        that raised the share on Breakout and highway, +0.13 and +0.14), and it cannot mask its
        gradient, so its robustness figures are honest;
      - the adversarial KL at the sweep's largest radius (:data:`LARGEST_ATTACK_EPS`, 16/255),
        weight 0.25, its gradient projected off the clean KL's where they conflict
        (``adv_project``);
      - online rollouts that play greedily, half of the steps the teacher's
        (``rollout_greedy`` 1, ``rollout_teacher`` 0.5), and a linearly decaying rate
        (``lr_anneal``), which kept the warm-started Breakout students' score.

      Measured (``results/recipe-ablation.md``, sessions 18-23): Red-Fetch-Green, three seeds: cc
      0.80-0.82, share 0.84-0.85, success 0.995-1.00, at or above the teacher at 59 of the 60
      seed-points of the robustness sweep; highway, three seeds: cc 0.77, share 0.51-0.53, success
      0.88-0.90, at or above the teacher at every attacked point; Breakout, three seeds: cc 0.71,
      share 0.77, 71-81% of the teacher's score (the adversarial KL at 16/255 costs it: without it
      88.5%).

    * ``"relu"`` (called ``"default"`` until session 22; the committed ``digr/`` students of
      sessions 17-21 use it):

      - the student has the teacher's architecture and starts from its weights (``warm_start``),
        so it acts like the teacher from the first update and the KL only has to hold it there;
      - eq. 4 is the sum of two scale-free terms (``igr_normalizer="mean+pearson"``): the share of
        the map's gradient mass on penalised pixels (the map divided by its mean, so a spike
        earns nothing) and ``1 - r``, ``r`` the map's correlation with the teacher's map cut at
        lambda, which asks the kept mass to follow the teacher's map. Against the mean term
        alone it raised cc on Red-Fetch-Green from 0.75 to 0.81 at the same share and took
        Table 1's unimportant from 0.95 to 0.00; on Breakout it fitted faster at a third of the
        KL;
      - ``alpha`` 10, the weight that keeps the KL term in step with that share-sized IGR term;
      - adversarial distillation at 8/255 with one MAD step (``adv_eps``, ``adv_steps``): the KL is
        also taken on an attacked state.

      Its ReLU student masks its own gradient: attacked through its smooth twin it falls below
      the teacher on Red-Fetch-Green at MAD 8 and 16/255 (session 21), which is why it is no
      longer the default. An input blur (``student_input_blur``, radius / 4) was part of it until
      the correlation term replaced it: it made the map smooth but spread mass onto the floor
      next to objects (Table 1 unimportant 0.95) and raised the starting KL.

    * ``"paper"``: nothing -- the paper's loss as printed (eq. 4 with eq. 2's max-normalised map,
      Table 3's alpha), a freshly initialised student with the teacher's architecture.
    """
    name = recipe_name(recipe)
    if name == "paper":
        return {}
    relu = {"igr_normalizer": "mean+pearson", "alpha": 10.0, "warm_start": True, "adv_eps": 8 / 255,
            "adv_steps": 1}
    if name == "relu":
        return relu
    # "smooth"
    return {**relu, "student_softplus": 50.0, "adv_eps": LARGEST_ATTACK_EPS, "adv_weight": 0.25,
            "adv_project": True, "rollout_greedy": 1.0, "rollout_teacher": 0.5, "lr_anneal": True}


@dataclass(frozen=True)
class DistillConfig:
    """Student training settings (paper section 3, eq. 4-5; appendix A, Table 3)."""

    recipe: str = "paper"
    """The named recipe these settings started from (:func:`recipe_settings`); recorded so that
    reports say which recipe made each student. :meth:`for_task` defaults to
    :data:`DEFAULT_RECIPE`; a bare ``DistillConfig()`` is the paper's settings."""
    warm_start: bool = False
    """Start the student from the teacher's weights (the teacher's architecture, or the blurred /
    pooled student built from it) instead of a fresh initialisation."""

    alpha: float = 0.01
    """Weight of the distillation term in ``L = IGR + alpha * KL`` (eq. 5, Table 3)."""
    threshold: float = 0.1
    """Saliency threshold lambda: pixels with teacher map ``M_p <= threshold`` are penalised (eq. 4)."""
    learning_rate: float = 1e-3
    """Optimizer learning rate (Table 3)."""
    lr_anneal: bool = False
    """An extension beyond the paper: decay the learning rate linearly from ``learning_rate`` at the
    first update to 0 after the last (as CleanRL's ``anneal_lr``; the schedule follows ``steps``, so
    a run resumed with more steps continues on the longer schedule). False: Table 3's constant rate.
    A warm-started student's policy drifts with every Adam step whatever the size of its gradient,
    so a constant rate trades the map's fit against the score; the decay fits early and settles
    late."""
    optimizer: str = "adam"
    """``adam`` or ``rmsprop`` (Table 3)."""
    buffer_size: int = 10_000
    """Capacity of the FIFO online state buffer filled by the student's own rollouts (Table 3)."""
    batch_size: int = 64
    """States per update, for the distillation batch (buffer) and the IGR batch (dataset) alike."""
    steps: int = 3000
    """Number of updates (optimizer steps) in total; a resumed run continues up to this."""
    n_envs: int = 8
    """Environments the student steps once per update (sampling from its own distribution unless
    ``rollout_greedy`` or ``rollout_teacher`` say otherwise)."""
    rollout_greedy: float = 0.0
    """An extension beyond the paper: the probability that the student, when it fills the online
    buffer, takes its most likely action instead of sampling one (per env and step). 0 is the
    paper's Figure 2 (the student samples). Evaluations play the greedy policy, and a sampling
    student rarely reaches the states greedy play does (on Breakout, the late game of a policy
    that keeps the ball in play), so the KL never sees them."""
    rollout_teacher: float = 0.0
    """An extension beyond the paper: the probability that a step of the online rollouts is the
    teacher's most likely action instead of the student's (DAgger's mixture, Ross et al. 2011; 0:
    the paper's, the student alone acts). The states still go into the buffer and are labelled by
    the teacher as any other; the teacher's greedy play carries the rollouts into states that the
    student's own play seldom reaches (on Breakout, the late game past the student's score)."""
    use_igr: bool = True
    """Include the selective input-gradient regularisation; False is the paper's
    "policy distillation only" baseline through the same code path (``--no-igr``)."""
    igr_normalizer: str = "max"
    """Form of eq. 4's term: how the student's gradient map is normalised (``max``, eq. 2 literally;
    ``mean``; ``topk``) or compared with the teacher's map (``pearson``, ``mean+pearson``); see
    :func:`digr.distill.losses.selective_penalty`."""
    igr_topk: int = 64
    """``k`` of the ``topk`` normaliser: the student's map is divided by the mean of its ``k``
    largest values (only with ``igr_normalizer="topk"``; 1 would be eq. 2's max)."""
    adv_eps: float = 0.0
    """An extension beyond the paper: L-inf radius (pixel scale ``[0, 1]``, ``k / 255`` = ``k`` grey
    levels) of adversarial distillation. With ``adv_eps > 0`` the distillation objective becomes
    ``KL(pi_t(s) || pi_theta(s)) + adv_weight * KL(pi_t(s) || pi_theta(s'))``, where ``s'`` is the
    MAD attack (:class:`digr.attacks.mad.MAD`, ``adv_steps`` ascent steps) on the student at ``s``,
    crafted afresh each update on the distillation batch. 0 (default) is the paper's loss."""
    adv_weight: float = 1.0
    """Weight of the adversarial KL relative to the clean KL (only with ``adv_eps > 0``)."""
    adv_steps: int = 5
    """MAD ascent steps per update for the adversarial states (only with ``adv_eps > 0``)."""
    adv_project: bool = False
    """An extension beyond the paper (only with ``adv_eps > 0``): where the adversarial KL's gradient
    points against the clean KL's (negative dot product), remove its component along the clean
    one (PCGrad's projection, one way) before the two are added, so that to first order an update
    never buys robustness with the clean behaviour; the clean KL's gradient is left as it is.
    False: the two KL terms are summed before the gradient is taken."""
    student_fls: str | None = None
    """Student architecture: ``None`` (the teacher's, as the paper) or an FLS variant
    (``sparse``, ``sparse-sum``, ``dense``; :func:`digr.models.fls.fls_config` of the teacher's
    network) for "FLS + DIGR": DIGR distillation into a student with a Free-Lunch Saliency module."""
    student_input_pool: int = 1
    """Student architecture: average the input over ``k x k`` blocks before the first conv, whose
    kernel and stride shrink by ``k`` (:func:`digr.models.cnn.pooled_student_config`); 1 (default)
    is the teacher's architecture. A student design beyond the paper: its gradient map is constant
    on each block, so it cannot put its saliency on one pixel of an object."""
    student_input_blur: float = 0.0
    """Student architecture: the standard deviation in pixels of a fixed Gaussian blur in front of
    the student's network (:attr:`digr.models.PolicyConfig.input_blur`; 0: none). Its input
    gradient, and so its vanilla-gradient map, is then smooth at that scale, the scale at which the
    teacher's Gaussian-blur perturbation map varies."""
    student_softplus: float = 0.0
    """Student architecture: 0 (default) keeps the teacher's ReLU units; > 0 replaces every ReLU
    of the student by ``softplus(beta z) / beta`` with this beta
    (:attr:`digr.models.PolicyConfig.softplus_beta`). Parameter-free, so the student still
    warm-starts from the teacher's weights (at beta 50 the warm-started student's KL to the
    Breakout teacher is ~0.1, gone within a few hundred updates). Why: eq. 4 is a loss on the
    input gradient, and a ReLU's zero second derivative hides from it how moving a unit's
    activation boundary moves the map; offline, a softplus-50 student fitted Breakout's eq. 4 to a
    held-out share of 0.81 where the ReLU student reached 0.70 (results/recipe-ablation.md,
    session 18)."""
    pcgrad: bool = True
    """Combine the two objectives' gradients with PCGrad (Yu et al. 2020) instead of summing."""
    max_grad_norm: float | None = None
    """Clip the combined gradient to this L2 norm (None: no clipping; the paper does not clip)."""
    seed: int = 0
    """Seed of the student's initialisation, batch sampling and environment resets."""
    eval_every: int = 500
    """Updates between evaluations of the student's success rate (0: only at the end)."""
    eval_episodes: int = 50
    """Greedy episodes per evaluation (0: never evaluate)."""
    eval_seed: int = 1_000_000
    """Episode ``k`` of every evaluation resets with ``eval_seed + k`` (kept apart from training seeds)."""
    checkpoint_every: int = 500
    """Updates between resumable checkpoints."""
    log_every: int = 50
    """Updates between rows of ``metrics.jsonl`` (each row averages the updates since the last)."""
    torch_threads: int | None = None
    """Threads torch may use in the trainer process (None: leave torch's setting alone)."""

    def validate(self) -> "DistillConfig":
        from digr.errors import MAX_ENVS, MAX_SEED, check_finite

        for name in ("alpha", "threshold", "learning_rate", "adv_eps", "adv_weight", "student_input_blur",
                     "student_softplus", "rollout_greedy", "rollout_teacher"):
            check_finite(name, getattr(self, name))
        if self.max_grad_norm is not None:
            check_finite("max_grad_norm", self.max_grad_norm)
        check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        check_int("eval_seed", self.eval_seed, minimum=0, maximum=MAX_SEED)
        check_int("n_envs", self.n_envs, maximum=MAX_ENVS)
        for name in ("buffer_size", "batch_size", "n_envs", "checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise DigrError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("steps", "eval_every", "eval_episodes"):
            if getattr(self, name) < 0:
                raise DigrError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.student_fls is not None and self.student_fls not in STUDENT_FLS:
            raise DigrError(f"student_fls must be one of {', '.join(STUDENT_FLS)}, got {self.student_fls!r}")
        for name in ("student_input_pool", "igr_topk"):
            check_int(name, getattr(self, name))
        check_recipe(self.recipe)
        if not (isinstance(self.student_input_blur, (int, float)) and 0 <= self.student_input_blur < 1e4):
            raise DigrError(f"student_input_blur must be a number of pixels >= 0, got {self.student_input_blur!r}")
        check_softplus_beta("student_softplus", self.student_softplus)
        if not 0.0 <= self.adv_eps <= 1.0:
            raise DigrError(f"adv_eps must be in [0, 1] (pixel scale: 8/255 = {8 / 255:.4f}), got {self.adv_eps}")
        if self.adv_weight < 0:
            raise DigrError(f"adv_weight must be >= 0, got {self.adv_weight}")
        if self.adv_steps < 1:
            raise DigrError(f"adv_steps must be >= 1, got {self.adv_steps}")
        if not 0.0 <= self.rollout_greedy <= 1.0:
            raise DigrError(f"rollout_greedy must be a probability in [0, 1], got {self.rollout_greedy}")
        if not 0.0 <= self.rollout_teacher <= 1.0:
            raise DigrError(f"rollout_teacher must be a probability in [0, 1], got {self.rollout_teacher}")
        if self.alpha < 0:
            raise DigrError(f"alpha must be >= 0, got {self.alpha}")
        if not 0.0 <= self.threshold <= 1.0:
            raise DigrError(f"threshold must be in [0, 1] (maps are normalised), got {self.threshold}")
        if self.learning_rate <= 0:
            raise DigrError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.igr_normalizer not in NORMALIZERS:
            raise DigrError(f"igr_normalizer must be one of {', '.join(NORMALIZERS)}, got {self.igr_normalizer!r}")
        if self.optimizer not in OPTIMIZERS:
            raise DigrError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.buffer_size < self.batch_size:
            raise DigrError(f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise DigrError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.torch_threads is not None and self.torch_threads <= 0:
            raise DigrError(f"torch_threads must be > 0, got {self.torch_threads}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DistillConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known}).validate()

    @classmethod
    def for_task(cls, spec, *, recipe: str = DEFAULT_RECIPE, **overrides: Any) -> "DistillConfig":
        """Table 3 defaults of ``spec`` (a :class:`digr.envs.TaskSpec`), then the named ``recipe``'s
        settings (:func:`recipe_settings`), then ``overrides`` (``None`` values are ignored, so CLI
        options that were not given keep the recipe's value)."""
        known = {f.name for f in fields(cls)}
        merged = {**spec.distill, **recipe_settings(recipe, spec), "recipe": recipe,
                  **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(merged) - known
        if unknown:
            raise DigrError(f"unknown DIGR settings: {', '.join(sorted(unknown))}")
        return replace(cls(), **merged).validate()


@dataclass(frozen=True)
class DatasetConfig:
    """Offline perturbation-saliency dataset settings (paper section 3, "offline perturbation
    saliency dataset D"; size from Table 3, radius from appendix A)."""

    size: int = 1000
    """Number of states (Table 3: 1k Red-Fetch-Green, 10k Breakout, 2.5k driving)."""
    radius: int = 4
    """Gaussian-blur perturbation radius in pixels (appendix A: 4, 8, 5)."""
    stride: int = 1
    """Pixel stride of the perturbation centres; 1 gives the full-resolution map that
    supervises every pixel of the student's gradient map (eq. 4)."""
    truncate: float | None = None
    """Cut the perturbation window at this many radii (see
    :func:`digr.saliency.perturbation.perturbation_saliency`; about 3.53 drops weights below
    1/510, under half a grey level). None (default): the exact, untruncated Gaussian window, as
    every dataset made before the option existed. The dataset is made once, offline, so exactness
    wins by default; truncation speeds up large inputs (about 2.8x at 128x128)."""
    shard_size: int = 64
    """States per shard file; the unit of parallel work and of resumption."""
    seed: int = 0
    """Shard ``i`` draws its episodes, actions and kept states from ``SeedSequence([seed, i])``."""
    keep_prob: float = 0.25
    """Each state the teacher visits is kept with this probability, so consecutive, nearly
    identical frames of one episode are rarely both in the dataset."""

    def validate(self) -> "DatasetConfig":
        for name in ("size", "radius", "stride", "shard_size"):
            if getattr(self, name) <= 0:
                raise DigrError(f"dataset {name} must be > 0, got {getattr(self, name)}")
        from digr.errors import MAX_STATES, check_int

        check_int("dataset size", self.size, maximum=MAX_STATES)  # the shard plan is a list: bound it
        check_int("dataset shard_size", self.shard_size, maximum=MAX_STATES)
        if self.truncate is not None and not self.truncate > 0:
            raise DigrError(f"truncate must be > 0 (radii) or None, got {self.truncate}")
        if not 0.0 < self.keep_prob <= 1.0:
            raise DigrError(f"keep_prob must be in (0, 1], got {self.keep_prob}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_task(cls, spec, **overrides: Any) -> "DatasetConfig":
        """``spec``'s Table 3 size and appendix A radius with ``overrides`` (``None`` ignored)."""
        known = {f.name for f in fields(cls)}
        merged = {"size": spec.dataset_size, "radius": spec.perturbation_radius,
                  **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(merged) - known
        if unknown:
            raise DigrError(f"unknown dataset settings: {', '.join(sorted(unknown))}")
        return replace(cls(), **merged).validate()


__all__ = ["DatasetConfig", "DistillConfig", "DEFAULT_RECIPE", "LARGEST_ATTACK_EPS", "NORMALIZERS", "OPTIMIZERS", "RECIPES",
           "RECIPE_ALIASES", "RESUMABLE_FIELDS", "STUDENT_FLS", "check_recipe", "recipe_name", "recipe_settings"]
