"""Langevin dynamics: drawing samples from a distribution known only through its score.

The score ``s(x) = grad_x log p(x)`` is an arrow pointing towards more likely points. Follow it with small
steps and add a little fresh noise at each one, and the points end up distributed as ``p`` (Langevin
dynamics): ``x <- x + (eta / 2) s(x) + sqrt(eta) z``, ``z ~ N(0, I)``. Without the noise every point would
climb to the nearest peak; the noise keeps them spread as ``p`` is.

One score alone is a poor guide far from the data, where almost no training point ever was. *Annealed*
Langevin dynamics (Song & Ermon 2019, Algorithm 1) starts with the score of very noisy data, which is
smooth and reliable everywhere, and lowers the noise level by level. A diffusion model's noise predictor
gives exactly such a family of scores (:func:`course_utils.diffusion.score_from_eps`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from course_utils.diffusion import NoisePredictor, NoiseSchedule, score_from_eps

ScoreFunction = Callable[[torch.Tensor], torch.Tensor]
"""``score(x) -> grad_x log p(x)``, a tensor shaped like ``x``."""


@torch.no_grad()
def langevin_sample(
    score: ScoreFunction, x: torch.Tensor, step_size: float, steps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Run ``steps`` Langevin steps from ``x``: ``x <- x + (step_size / 2) score(x) + sqrt(step_size) z``."""
    if step_size <= 0 or steps < 0:
        raise ValueError(f"need step_size > 0 and steps >= 0, got {step_size} and {steps}")
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        x = x + 0.5 * step_size * score(x) + step_size**0.5 * z
    return x


@torch.no_grad()
def annealed_langevin_sample(
    model: NoisePredictor,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    levels: int = 20,
    steps_per_level: int = 20,
    step_scale: float = 0.1,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Annealed Langevin dynamics with the scores of a noise predictor: ``levels`` noise levels from the noisiest
    (``t = T - 1``) down to ``t = 0``, ``steps_per_level`` Langevin steps at each.

    The step at level ``t`` is ``step_scale * (1 - alpha_bar_t)``, proportional to the noise variance there
    (Song & Ermon 2019, Algorithm 1: ``alpha_i = eps * sigma_i^2 / sigma_L^2``). Starts from ``N(0, I)``, the
    noisiest ``p_t``. Returns ``(samples, trajectory)``, the trajectory holding ``x`` after each level.
    """
    if levels < 1 or levels > schedule.timesteps:
        raise ValueError(f"levels must lie in 1 .. {schedule.timesteps}, got {levels}")
    ts: Sequence[int] = torch.linspace(schedule.timesteps - 1, 0, levels).round().long().tolist()
    x = torch.randn(shape, generator=generator).to(device)
    trajectory = []
    for step in ts:
        t = torch.full((shape[0],), step, dtype=torch.int64, device=device)

        def score(points: torch.Tensor, t: torch.Tensor = t) -> torch.Tensor:
            return score_from_eps(model(points, t), t, schedule)

        step_size = step_scale * float(1 - schedule.alpha_bar[step])
        x = langevin_sample(score, x, step_size, steps_per_level, generator)
        trajectory.append(x.detach().cpu())
    return x, trajectory
