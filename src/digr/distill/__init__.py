"""The DIGR method (paper section 3): perturbation-saliency dataset, losses, PCGrad, trainer.

- :func:`build_dataset` / :func:`load_dataset`: the offline dataset D of teacher states with their
  perturbation maps ``M_p`` and action probabilities.
- :func:`igr_loss` (eq. 4) and :func:`distillation_loss` (the KL term of eq. 5).
- :func:`pcgrad`: gradient surgery for the two objectives.
- :func:`train_student`: the student trainer (``digr distill``), configured by :class:`DistillConfig`.
"""

from digr.distill.buffer import StateBuffer
from digr.distill.config import DatasetConfig, DistillConfig
from digr.distill.dataset import SaliencyDataset, build_dataset, load_dataset, read_manifest
from digr.distill.distiller import Distiller
from digr.distill.losses import DistillMetrics, IGRMetrics, distillation_loss, igr_loss
from digr.distill.pcgrad import pcgrad
from digr.distill.trainer import train_student

__all__ = [
    "DatasetConfig", "DistillConfig", "DistillMetrics", "Distiller", "IGRMetrics", "SaliencyDataset",
    "StateBuffer", "build_dataset", "distillation_loss", "igr_loss", "load_dataset", "pcgrad",
    "read_manifest", "train_student",
]
