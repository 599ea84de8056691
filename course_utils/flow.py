"""Flow matching (rectified flow): a picture and noise mixed on a straight line, and a network that learns the velocity.

The forward "process" is one line: ``x_t = (1 - t) x_0 + t eps`` for a continuous time ``t`` in ``[0, 1]``, with
``t = 0`` the data and ``t = 1`` pure Gaussian noise. Along that line ``x_t`` moves at the constant velocity
``dx_t/dt = eps - x_0``. A network ``v(x_t, t)`` learns it by plain regression (the *flow-matching loss*), and
sampling walks the line back from noise at ``t = 1`` to a picture at ``t = 0`` by integrating the ordinary
differential equation ``dx/dt = v(x, t)`` with a few Euler or Heun steps.

With Gaussian noise this is diffusion under another name: ``x_t = alpha_t x_0 + sigma_t eps`` with the schedule
``alpha_t = 1 - t``, ``sigma_t = t``, and a velocity in place of the noise as the network's target. So the same
network can be read as a noise predictor (:func:`eps_from_velocity`, :func:`as_noise_predictor`) and sampled with
DDIM, or the other way round.

Pure PyTorch, vectorised over the batch. A velocity model is any callable ``model(x_t, t) -> v`` with ``t`` a float
tensor of shape ``N`` in ``[0, 1]``.

References: Lipman et al. 2023, *Flow Matching for Generative Modeling*; Liu, Gong & Liu 2023, *Flow Straight and
Fast* (rectified flow); Esser et al. 2024 (Stable Diffusion 3) train this way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.diffusion import in_batches

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``model(x_t, t) -> v_hat``: the velocity at points ``x_t`` and continuous times ``t`` (shape ``N``, in [0, 1])."""

SOLVERS = ("euler", "heun")
TIME_DISTRIBUTIONS = ("uniform", "logit-normal")
SAMPLE_STEPS = 10
"""The course's number of ODE steps for a flow model: Heun's 10 steps are 19 network calls."""


def _per_item(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``t`` (a number, or one time per item) shaped ``N x 1 x ... x 1`` to broadcast over ``x``."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a number or hold one time per item, shape ({x.shape[0]},); got {tuple(t.shape)}")
    return t.view(-1, *([1] * (x.ndim - 1)))


# --------------------------------------------------------------------------- the straight path and its target


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The point at time ``t`` on the straight line from the data to the noise: ``x_t = (1 - t) x_0 + t eps``.

    ``t = 0`` gives the data ``x_0``, ``t = 1`` the noise ``eps``; ``t`` is a number or one time per item.
    """
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    t = _per_item(t, x0)
    return (1 - t) * x0 + t * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """What the network learns: ``d x_t / dt = eps - x_0``, the same at every ``t`` on one straight line.

    It points from the data towards the noise; sampling walks against it, from noise (``t = 1``) to data.
    """
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    return eps - x0


def draw_times(
    n: int, generator: torch.Generator | None = None, distribution: str = "uniform", mean: float = 0.0
) -> torch.Tensor:
    """``n`` training times in ``[0, 1]`` (a float CPU tensor), drawn from ``distribution``:

    - ``'uniform'``: ``t ~ U[0, 1]``, the textbook loss;
    - ``'logit-normal'``: ``t = sigmoid(z)`` with ``z ~ N(mean, 1)`` (Esser et al. 2024, Stable Diffusion 3): the
      density ``1 / (sqrt(2 pi) t (1 - t)) exp(-(logit(t) - mean)^2 / 2)`` peaks near ``sigmoid(mean)`` and thins out
      near 0 and 1, where the velocity is easy to guess (nearly all picture or nearly all noise). The network trains
      more where it is hard; a negative ``mean`` moves the peak towards the picture end. (``'uniform'`` has no
      ``mean``: it is ignored.)
    """
    if distribution not in TIME_DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {TIME_DISTRIBUTIONS}, got {distribution!r}")
    if distribution == "uniform":
        return torch.rand(n, generator=generator)
    return torch.sigmoid(mean + torch.randn(n, generator=generator))


def flow_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    labels: torch.Tensor | None = None,
    times: str = "uniform",
    times_mean: float = 0.0,
) -> torch.Tensor:
    """The conditional flow-matching loss: ``|| (eps - x_0) - v(x_t, t) ||^2``, with ``t`` drawn per item from the
    distribution ``times`` (:func:`draw_times`: ``'uniform'``, ``t ~ U[0, 1]``, or ``'logit-normal'`` around
    ``sigmoid(times_mean)``).

    Each item gets its own noise and time (drawn on the CPU with ``generator``, so a seed trains the same way on every
    device). The target of one item is one line's velocity; averaged over every line through ``x_t`` the minimiser is
    the *marginal* velocity ``E[eps - x_0 | x_t]`` (see :func:`gaussian_velocity`), whatever the times' distribution:
    it only decides how much each time counts. With ``labels`` the model is called as ``model(x_t, t, labels)``.
    """
    t = draw_times(x0.shape[0], generator, times, times_mean).to(x0.device, x0.dtype)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    x_t = interpolate(x0, eps, t)
    predicted = model(x_t, t) if labels is None else model(x_t, t, labels)
    return F.mse_loss(predicted, velocity_target(x0, eps))


def mixture_velocity(
    x: torch.Tensor, t: torch.Tensor | float, centres: torch.Tensor, weights: torch.Tensor, std: float
) -> torch.Tensor:
    """The exact marginal velocity ``E[eps - x_0 | x_t = x]`` for data from a mixture of round Gaussians.

    Component ``k`` (centre ``m_k``, standard deviation ``s``) makes ``x_t`` Gaussian with mean ``(1 - t) m_k`` and
    variance ``V_t = (1 - t)^2 s^2 + t^2``, and its own field is linear: ``v_k(x) = -m_k + (t - (1 - t) s^2) / V_t
    (x - (1 - t) m_k)``. The mixture's field weighs the ``v_k`` by how likely each component made ``x``. ``x`` is
    ``N x D``, ``t`` a number or one time per point, ``centres`` ``K x D``, ``weights`` ``K``.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)  # 1 or N, x 1 x 1
    centres = centres.to(x)[None]  # 1 x K x D
    variance = (1 - t) ** 2 * std**2 + t**2
    offsets = x[:, None, :] - (1 - t) * centres  # N x K x D
    log_w = weights.to(x).log() - (offsets.pow(2) / (2 * variance)).sum(-1)  # N x K, up to a shared constant
    fields = -centres + (t - (1 - t) * std**2) / variance * offsets  # N x K x D
    return (log_w.softmax(dim=1)[..., None] * fields).sum(1)


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor | float, mean: torch.Tensor, std: float) -> torch.Tensor:
    """The exact marginal velocity for Gaussian data ``N(mean, std^2 I)``: linear in ``x`` (see
    :func:`mixture_velocity`, of which it is the one-component case)."""
    return mixture_velocity(x, t, mean.reshape(1, -1), torch.ones(1), std)


# --------------------------------------------------------------------------- sampling: integrate dx/dt = v back


def time_grid(steps: int, start: float = 1.0, end: float = 0.0) -> torch.Tensor:
    """``steps + 1`` evenly spaced times from ``start`` (noise) down to ``end`` (data)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return torch.linspace(start, end, steps + 1, dtype=torch.float64)


def euler_step(velocity: VelocityField, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One Euler step of ``dx/dt = v(x, t)``: ``x_next = x + (t_next - t) v(x, t)`` (first order: halving the step
    size halves the error)."""
    v = velocity(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    return x + (t_next - t) * v


def heun_step(velocity: VelocityField, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One Heun step (the trapezoid rule, second order): an Euler guess ``x' = x + h v(x, t)`` with ``h = t_next - t``,
    then ``x_next = x + h (v(x, t) + v(x', t_next)) / 2``. Two network calls; halving the step quarters the error."""
    h = t_next - t
    v = velocity(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    guess = x + h * v
    v_next = velocity(guess, torch.full((x.shape[0],), t_next, dtype=x.dtype, device=x.device))
    return x + h * (v + v_next) / 2


@torch.no_grad()
def flow_sample(
    velocity: VelocityField,
    x1: torch.Tensor,
    steps: int = SAMPLE_STEPS,
    solver: str = "euler",
    return_trajectory: bool = False,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Walk from the noise ``x1`` at ``t = 1`` to data at ``t = 0`` in ``steps`` equal steps of ``solver``
    (``'euler'``: ``steps`` network calls, ``'heun'``: ``2 steps``). The network sees ``batch_size`` items at a time
    (None: all). Returns ``(x0, trajectory)``; the trajectory holds ``x`` before each step and the end point."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    step = euler_step if solver == "euler" else heun_step

    def batched(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return in_batches(velocity, batch_size, x, t)

    times = time_grid(steps).tolist()
    x, trajectory = x1, []
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        if return_trajectory:
            trajectory.append(x.detach().cpu())
        x = step(batched, x, t, t_next)
    if return_trajectory:
        trajectory.append(x.detach().cpu())
    return x, trajectory


def network_calls(steps: int, solver: str) -> int:
    """How many times :func:`flow_sample` calls the network per picture: ``steps`` (Euler) or ``2 steps`` (Heun)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    return steps if solver == "euler" else 2 * steps


# --------------------------------------------------------------------------- the link to diffusion


def x0_from_velocity(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The clean data a velocity points at: ``x_0 = x_t - t v``
    (from ``x_t = (1 - t) x_0 + t eps`` and ``v = eps - x_0``)."""
    return x_t - _per_item(t, x_t) * v


def eps_from_velocity(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The noise a velocity points at: ``eps = x_t + (1 - t) v``."""
    return x_t + (1 - _per_item(t, x_t)) * v


def velocity_from_eps(eps: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """A noise prediction read as a velocity: ``v = (eps - x_t) / (1 - t)`` (undefined at ``t = 1``)."""
    return (eps - x_t) / (1 - _per_item(t, x_t))


def flow_time(alpha_bar: torch.Tensor) -> torch.Tensor:
    """The flow time whose signal-to-noise ratio matches a diffusion step's ``alpha_bar``:
    ``(1 - t) / t = sqrt(alpha_bar / (1 - alpha_bar))``, so ``t = sqrt(1 - a) / (sqrt(a) + sqrt(1 - a))``."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return (1 - a).sqrt() / (a.sqrt() + (1 - a).sqrt())


def flow_scale(t: torch.Tensor) -> torch.Tensor:
    """``c_t = sqrt((1 - t)^2 + t^2)``: the flow's ``x_t`` is diffusion's ``x`` at the matching step times ``c_t``
    (``x_t = c_t (sqrt(a) x_0 + sqrt(1 - a) eps)`` with ``sqrt(a) = (1 - t) / c_t``)."""
    return ((1 - t) ** 2 + t**2).sqrt()


def as_noise_predictor(velocity: VelocityField, alpha_bar: torch.Tensor) -> Callable[..., torch.Tensor]:
    """A velocity network read as diffusion's noise predictor ``eps_hat(x, t)`` at integer steps ``t`` of a schedule
    with ``alpha_bar`` (a 1-D tensor): rescale ``x`` to the flow's ``x_t`` at the matching time (:func:`flow_time`,
    :func:`flow_scale`), ask for the velocity, and turn it into the noise (:func:`eps_from_velocity`). The result runs
    in :func:`course_utils.diffusion.ddim_sample` like any noise predictor."""

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        times = flow_time(alpha_bar.to(torch.float64)[t.cpu()]).to(x.device, x.dtype)
        x_t = x * _per_item(flow_scale(times), x)
        return eps_from_velocity(velocity(x_t, times), x_t, times)

    return predict


# --------------------------------------------------------------------------- a model with its sampler settings


class FlowModel(nn.Module):
    """A velocity network with its sampler settings: ``model(x_t, t)`` for continuous ``t`` in ``[0, 1]``.

    ``net`` is the course's U-Net, whose time embedding was made for diffusion's integer steps ``0 .. 999``: the time
    is scaled by ``time_scale`` (1000) before it goes in, so the embedding's frequencies cover it as they did. A
    class-conditional ``net`` (with ``null_label``) is called as ``net(x, t, labels)``. ``sample_steps`` and ``solver``
    set how :meth:`sample` integrates; ``bf16`` runs the network in bfloat16 autocast.
    """

    def __init__(
        self,
        net: nn.Module,
        sample_steps: int = SAMPLE_STEPS,
        solver: str = "heun",
        bf16: bool = False,
        time_scale: float = 1000.0,
    ) -> None:
        super().__init__()
        network_calls(sample_steps, solver)  # validates the solver
        time_grid(sample_steps)  # validates the steps
        self.net, self.sample_steps, self.solver = net, sample_steps, solver
        self.bf16, self.time_scale = bf16, time_scale

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images this model makes."""
        return tuple(self.net.image_shape)  # type: ignore[return-value]

    @property
    def null_label(self) -> int | None:
        """The "no label" token of a class-conditional net (None for an unconditional one)."""
        label = getattr(self.net, "null_label", None)
        return None if label is None else int(label)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        time = t.float() * self.time_scale
        args = (x_t, time) if self.null_label is None else (x_t, time, labels)
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.net(*args).float()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        solver: str | None = None,
        return_trajectory: bool = False,
        batch_size: int | None = None,
        velocity: VelocityField | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``n`` images and the trajectory (see :func:`flow_sample`), from noise drawn on the CPU with ``generator`` (a
        seed gives the same images on every device). ``velocity`` replaces the plain model (a guided mixture)."""
        device = next(self.parameters()).device
        x1 = torch.randn((n, *self.image_shape), generator=generator).to(device)
        return flow_sample(
            velocity or self, x1, steps or self.sample_steps, solver or self.solver, return_trajectory, batch_size
        )


def guided_velocity(model: FlowModel, labels: torch.Tensor, w: float) -> VelocityField:
    """Classifier-free guidance for a velocity network: ``v_uncond + w (v_cond - v_uncond)``, the same mixture as
    :func:`course_utils.guidance.guided_eps` (the velocity is linear in the noise prediction at a given ``x_t``).
    Item ``i`` of ``x`` is drawn as class ``labels[i]``; one network call on a doubled batch gives both predictions."""
    if model.null_label is None:
        raise ValueError("guidance needs a class-conditional flow model (a U-Net with num_classes)")

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must hold one class per item, shape ({x.shape[0]},); got {tuple(labels.shape)}")
        shown = labels.to(x.device)
        none = torch.full_like(shown, model.null_label)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([none, shown]))
        v_uncond, v_cond = both.chunk(2)
        return v_uncond + w * (v_cond - v_uncond)

    return velocity
