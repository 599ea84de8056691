"""Diffusion models, the sculptor: noise schedules, the forward process and two samplers.

The forward process adds Gaussian noise to an image in ``T`` small steps until only noise is
left (the statue becomes a block of marble). A network learns to predict the noise that was
added; running the process backwards with it chisels noise away until an image appears.

Everything here is pure PyTorch and vectorised over the batch. Images live in ``[-1, 1]``
(:func:`course_utils.data.to_signed`); timesteps are integers ``t = 0 .. T-1`` (index ``t``
is the paper's step ``t + 1``). A model is any callable ``model(x_t, t) -> predicted noise``
with ``x_t`` of shape ``N x C x H x W`` and ``t`` an int64 tensor of shape ``N``.

References: Ho, Jain & Abbeel 2020, *Denoising Diffusion Probabilistic Models* (DDPM, eq. numbers
below); Nichol & Dhariwal 2021, *Improved DDPM* (cosine schedule); Song, Meng & Ermon 2021,
*Denoising Diffusion Implicit Models* (DDIM).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``model(x_t, t) -> eps_hat``: predicts the noise in ``x_t`` at integer timesteps ``t``."""

SAMPLE_ETA = 1.0
"""The course's DDIM ``eta``, the default of every sampler: 1 adds fresh noise at each step as DDPM does (on a small,
briefly trained model this cleans up the background); 0 is deterministic."""

SCHEDULES = ("linear", "cosine")


# --------------------------------------------------------------------------- noise schedules


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear schedule: ``beta_t`` grows linearly from ``beta_start`` to ``beta_end``.

    The defaults are the paper's for ``T = 1000``; for another ``T`` both ends are scaled by
    ``1000 / T`` so that the image is as fully destroyed at the end as with 1000 steps.
    """
    _check_timesteps(timesteps)
    scale = 1000.0 / timesteps
    return torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: ``alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2)`` (their eq. 17).

    It destroys the image more slowly at the start than the linear schedule, so fewer steps are
    wasted on almost-pure noise. ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}``, clipped at ``max_beta``.
    """
    _check_timesteps(timesteps)
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def _check_timesteps(timesteps: int) -> None:
    if not isinstance(timesteps, int) or timesteps < 2:
        raise ValueError(f"timesteps must be an integer >= 2, got {timesteps!r}")


@dataclass(frozen=True)
class NoiseSchedule:
    """Every per-timestep coefficient the forward process and the samplers need (1-D tensors of length ``T``).

    Build one with :func:`make_schedule`. Stored in float32; computed in float64.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_mean_coef_x0: torch.Tensor
    posterior_mean_coef_xt: torch.Tensor
    kind: str = "cosine"

    @property
    def timesteps(self) -> int:
        """``T``, the number of noising steps."""
        return self.betas.shape[0]

    def __repr__(self) -> str:
        ends = f"alpha_bar from {self.alpha_bar[0]:.4f} to {self.alpha_bar[-1]:.2e}"
        return f"NoiseSchedule({self.kind}, T={self.timesteps}, {ends})"


def make_schedule(timesteps: int = 1000, kind: str = "cosine") -> NoiseSchedule:
    """A :class:`NoiseSchedule` of ``timesteps`` steps, ``kind`` = ``'linear'`` or ``'cosine'``."""
    if kind == "linear":
        betas = linear_betas(timesteps)
    elif kind == "cosine":
        betas = cosine_betas(timesteps)
    else:
        raise ValueError(f"kind must be one of {SCHEDULES}, got {kind!r}")
    alphas = 1 - betas  # alpha_t = 1 - beta_t
    alpha_bar = torch.cumprod(alphas, dim=0)  # alpha_bar_t = prod_{s <= t} alpha_s (Ho eq. 4)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    # q(x_{t-1} | x_t, x_0) = N(posterior_mean, posterior_variance I) (Ho eq. 6-7)
    posterior_variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
    posterior_mean_coef_x0 = alpha_bar_prev.sqrt() * betas / (1 - alpha_bar)
    posterior_mean_coef_xt = alphas.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    values = [
        betas,
        alphas,
        alpha_bar,
        alpha_bar_prev,
        posterior_variance,
        posterior_mean_coef_x0,
        posterior_mean_coef_xt,
    ]
    return NoiseSchedule(*(v.to(torch.float32) for v in values), kind=kind)


def _at(coefficients: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Pick ``coefficients[t]`` for each image and shape it ``N x 1 x 1 x 1`` to broadcast over ``like``."""
    values = coefficients.to(like.device)[t]
    return values.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def _check_t(t: torch.Tensor, x: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.dtype not in (torch.int64, torch.int32) or t.shape != (x.shape[0],):
        raise ValueError(
            f"t must be an integer tensor of shape ({x.shape[0]},) (one timestep per image), "
            f"got {t.dtype} {tuple(t.shape)}"
        )
    if t.min() < 0 or t.max() >= schedule.timesteps:
        raise ValueError(f"timesteps must lie in 0 .. {schedule.timesteps - 1}, got {int(t.min())} .. {int(t.max())}")
    return t.long()


# --------------------------------------------------------------------------- the forward process


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Jump straight to step ``t``: ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise`` (Ho eq. 4).

    No need to add noise ``t`` times: the sum of Gaussian steps is one Gaussian with this closed form.
    """
    t = _check_t(t, x0, schedule)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    alpha_bar = _at(schedule.alpha_bar, t, x0)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


def predict_x0(x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Undo :func:`q_sample` given the noise (Ho eq. 15).

    ``x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``.
    """
    t = _check_t(t, x_t, schedule)
    alpha_bar = _at(schedule.alpha_bar, t, x_t)
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def posterior_mean(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Mean of ``q(x_{t-1} | x_t, x_0)``: ``coef_x0 * x_0 + coef_xt * x_t`` (Ho eq. 7)."""
    t = _check_t(t, x_t, schedule)
    return _at(schedule.posterior_mean_coef_x0, t, x_t) * x0 + _at(schedule.posterior_mean_coef_xt, t, x_t) * x_t


# --------------------------------------------------------------------------- training


def diffusion_loss(
    model: NoisePredictor, x0: torch.Tensor, schedule: NoiseSchedule, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DDPM's simple loss: ``|| eps - eps_hat(x_t, t) ||^2`` at a random ``t`` per image (Ho eq. 14).

    ``x0`` holds clean images in ``[-1, 1]``. Predicting the noise is an easy, well-scaled
    regression target at every ``t``, and knowing the noise is knowing the image (:func:`predict_x0`).
    """
    # Drawn on the CPU (where a seeded generator lives), then moved: the same seed trains the same way everywhere.
    t = torch.randint(0, schedule.timesteps, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    x_t = q_sample(x0, t, noise, schedule)
    return F.mse_loss(model(x_t, t), noise)


def score_from_eps(eps: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The score ``grad_x log p_t(x_t)`` estimated by a noise prediction: ``-eps / sqrt(1 - alpha_bar_t)``.

    Why: ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)`` has score ``-eps / sqrt(1 - alpha_bar_t)``
    for the noise ``eps`` that made ``x_t``; the best guess of ``eps`` from ``x_t`` alone (what the squared loss
    learns) turns it into the score of the noisy data ``p_t`` itself (Vincent 2011; Song et al. 2021, eq. 7).
    So predicting the noise *is* estimating the score, the arrow pointing towards more likely data.
    """
    t = _check_t(t, eps, schedule)
    return -eps / (1 - _at(schedule.alpha_bar, t, eps)).sqrt()


# --------------------------------------------------------------------------- sampling


@torch.no_grad()
def ddpm_sample(
    model: NoisePredictor,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    trajectory_every: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """DDPM ancestral sampling (Ho Algorithm 2): ``T`` steps from pure noise to images in ``[-1, 1]``.

    Each step predicts the noise, estimates ``x_0`` (kept in ``[-clip, clip]``; None: not clipped), takes the
    posterior mean (eq. 7) and adds fresh noise of the posterior variance (none at the last step).
    Returns ``(images, trajectory)``; the trajectory keeps ``x_t`` every ``trajectory_every`` steps (0: none).
    """
    x = torch.randn(shape, generator=generator).to(device)
    trajectory = []
    for step in reversed(range(schedule.timesteps)):
        t = torch.full((shape[0],), step, dtype=torch.int64, device=device)
        x0 = predict_x0(x, t, model(x, t), schedule)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        x = posterior_mean(x0, x, t, schedule)
        if step > 0:  # x_{t-1} = mean + sigma_t z, sigma_t^2 = posterior variance (Ho eq. 7, Alg. 2)
            z = torch.randn(shape, generator=generator).to(device)
            x = x + _at(schedule.posterior_variance, t, x).sqrt() * z
        if trajectory_every and (step % trajectory_every == 0):
            trajectory.append(x.detach().cpu())
    return x, trajectory


def ddim_timesteps(schedule: NoiseSchedule, steps: int) -> torch.Tensor:
    """``steps`` timesteps spread evenly from ``T-1`` down to 0, the path a DDIM sampler visits."""
    if not isinstance(steps, int) or not 1 <= steps <= schedule.timesteps:
        raise ValueError(f"steps must be an integer in 1 .. {schedule.timesteps}, got {steps!r}")
    return torch.linspace(schedule.timesteps - 1, 0, steps).round().long().unique_consecutive()


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_t: torch.Tensor | float,
    alpha_bar_prev: torch.Tensor | float,
    eta: float,
    noise: torch.Tensor | None = None,
    clip: float | None = 1.0,
) -> torch.Tensor:
    """One DDIM jump from ``x_t`` to an earlier step whose noise level is ``alpha_bar_prev`` (Song eq. 12).

    ``x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z``: point at the
    predicted image, then put back just the noise the earlier step should have. ``eta = 0`` is deterministic.
    ``clip`` keeps the guess of the clean image in ``[-clip, clip]`` (1 for pixels in ``[-1, 1]``, about 3 for latents
    of unit variance; None: not clipped) and uses the noise that matches the kept guess.
    """
    alpha_bar_t = torch.as_tensor(alpha_bar_t, dtype=x_t.dtype, device=x_t.device)
    alpha_bar_prev = torch.as_tensor(alpha_bar_prev, dtype=x_t.dtype, device=x_t.device)
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if clip is not None:
        x0_hat = x0_hat.clamp(-clip, clip)
        eps = (x_t - alpha_bar_t.sqrt() * x0_hat) / (1 - alpha_bar_t).sqrt()  # the noise that matches the clipped x0
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).sqrt()
    x_prev = alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if noise is None:
            raise ValueError("eta > 0 needs a noise tensor z")
        x_prev = x_prev + sigma * noise
    return x_prev


def in_batches(predict: Callable[..., torch.Tensor], batch_size: int | None, *tensors: torch.Tensor) -> torch.Tensor:
    """``predict(*tensors)``, computed ``batch_size`` rows at a time (all at once with None) to keep memory small.

    Only the network runs in batches: the samplers draw their noise for all the images at once, so the images do
    not depend on ``batch_size``.
    """
    if batch_size is not None and batch_size <= 0:
        raise ValueError(f"batch_size must be positive or None, got {batch_size}")
    if batch_size is None or tensors[0].shape[0] <= batch_size:
        return predict(*tensors)
    batches = zip(*(tensor.split(batch_size) for tensor in tensors), strict=True)
    return torch.cat([predict(*rows) for rows in batches])


@torch.no_grad()
def ddim_sample(
    model: NoisePredictor,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    steps: int = 20,
    eta: float = SAMPLE_ETA,
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
    return_trajectory: bool = False,
    device: torch.device | str = "cpu",
    x_T: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """DDIM sampling (Song et al. eq. 12) in ``steps`` network calls instead of ``T``; images in ``[-1, 1]``.

    The course's one sampling loop: unconditional, guided (:func:`course_utils.guidance.guided_ddim_sample` passes a
    ``model`` that mixes two predictions) and latent models all run it, one :func:`ddim_step` per timestep. The
    starting noise ``x_T`` (pass it in, or it is drawn) and, with ``eta > 0``, each step's fresh noise are drawn on
    the CPU with ``generator``, for all the images at once, so the same seed gives the same images on every device and
    whatever ``batch_size`` (how many images the network sees at a time; None: all) is, up to float rounding;
    ``clip`` as in :func:`ddim_step`. Returns ``(images, trajectory)``, the trajectory holding ``x_t`` before each
    step and the final images when ``return_trajectory``.
    """
    x = torch.randn(shape, generator=generator).to(device) if x_T is None else x_T.to(device)
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x.shape)}, expected {tuple(shape)}")
    timesteps = ddim_timesteps(schedule, steps).tolist()
    trajectory = []
    for i, step in enumerate(timesteps):
        if return_trajectory:
            trajectory.append(x.detach().cpu())
        t = torch.full((shape[0],), step, dtype=torch.int64, device=device)
        eps = in_batches(model, batch_size, x, t)
        alpha_bar_prev = schedule.alpha_bar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0)
        noise = torch.randn(shape, generator=generator).to(device) if eta > 0 else None
        x = ddim_step(x, eps, schedule.alpha_bar[step], alpha_bar_prev, eta, noise, clip)
    if return_trajectory:
        trajectory.append(x.detach().cpu())
    return x, trajectory


# --------------------------------------------------------------------------- a model with its schedule


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """True where bfloat16 arithmetic runs natively: recent CPUs (AVX512-BF16, AMX) and CUDA GPUs that support it.

    Elsewhere bfloat16 is emulated and slower than float32, so it should stay off.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class DiffusionModel(nn.Module):
    """A noise-predicting network together with its noise schedule and its sampler settings.

    ``model(x_t, t)`` predicts the noise (it is a :data:`NoisePredictor`); :meth:`sample` draws
    images in ``[-1, 1]`` with DDIM (``sample_steps`` network calls) or DDPM (all ``T``).
    ``sample_eta`` is DDIM's ``eta`` (see :data:`SAMPLE_ETA`) and ``clip`` the range ``[-clip, clip]`` each guess of
    the clean image is kept in (1 for pixels, about 3 for latents of unit variance; see :func:`ddim_step`).
    With ``bf16`` the network runs in bfloat16 autocast (weights and sampler arithmetic stay
    float32): about twice as fast on CPUs with native bfloat16, see :func:`bf16_is_fast`.
    """

    def __init__(
        self,
        net: nn.Module,
        timesteps: int = 1000,
        schedule: str = "cosine",
        sample_steps: int = 20,
        bf16: bool = False,
        sample_eta: float = SAMPLE_ETA,
        clip: float | None = 1.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.schedule = make_schedule(timesteps, schedule)
        self.sample_steps = sample_steps
        self.bf16 = bf16
        if not 0.0 <= sample_eta <= 1.0:
            raise ValueError(f"sample_eta must lie in [0, 1], got {sample_eta}")
        self.sample_eta = sample_eta
        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be positive (1 for pixels in [-1, 1]) or None, got {clip}")
        self.clip = clip
        ddim_timesteps(self.schedule, sample_steps)  # validates sample_steps

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images this model makes."""
        return tuple(self.net.image_shape)  # type: ignore[return-value]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self.bf16:  # no autocast at all: PyTorch before 2.5 refuses autocast on MPS even when disabled
            return self.net(x_t, t)
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16):
            return self.net(x_t, t).float()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        method: str = "ddim",
        return_trajectory: bool = False,
        eta: float | None = None,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``n`` images in ``[-1, 1]`` and the trajectory (see :func:`ddim_sample` / :func:`ddpm_sample`).

        ``steps`` and ``eta`` (DDIM only) default to ``sample_steps`` and ``sample_eta``; DDIM runs the network on
        ``batch_size`` images at a time. Noise is drawn on the CPU with ``generator``, so a seed gives the same
        images on every device.
        """
        device = next(self.parameters()).device
        shape = (n, *self.image_shape)
        if method == "ddim":
            steps = steps or self.sample_steps
            return ddim_sample(
                self,
                shape,
                self.schedule,
                steps,
                eta=self.sample_eta if eta is None else eta,
                generator=generator,
                clip=self.clip,
                return_trajectory=return_trajectory,
                device=device,
                batch_size=batch_size,
            )
        if method == "ddpm":
            every = max(1, self.schedule.timesteps // 10) if return_trajectory else 0
            return ddpm_sample(self, shape, self.schedule, generator, self.clip, every, device)
        raise ValueError(f"method must be 'ddim' or 'ddpm', got {method!r}")
