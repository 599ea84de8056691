"""Checks for notebooks 03 and 04 (GANs): build the artist, read the discriminator, write the losses and the steps.

Each check runs the student's function on small cases built to expose one mistake at a time (a
sigmoid instead of a Tanh, forgetting to convert pictures to [-1, 1], swapped labels, a missing
``detach()``, the saturating loss...) and compares it with a reference written with
:mod:`course_utils.losses`, so a wrong answer gets a hint about *that* mistake.

The models used inside the checks are small MLP GANs at 8x8 (no batch normalisation, so two runs
from the same seed are identical), seeded before the student's code and the reference alike.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from course_utils import losses
from course_utils.data import to_signed
from course_utils.exercises import CheckResult, ExerciseError, check, expect_close, expect_shape, expect_true
from course_utils.models.gan import GAN, MLPDiscriminator, MLPGenerator

# =========================================================================== notebook 03


def build_generator_reference(latent_dim: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """The artist of the source text: noise -> 256 -> 512 -> pixels, LeakyReLU(0.2), Tanh, reshaped."""
    return nn.Sequential(
        nn.Linear(latent_dim, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 512),
        nn.LeakyReLU(0.2),
        nn.Linear(512, math.prod(image_shape)),
        nn.Tanh(),
        nn.Unflatten(1, image_shape),
    )


def check_build_generator(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(latent_dim, image_shape) -> nn.Module``: the MLP generator (noise -> picture in [-1, 1])."""

    def test() -> None:
        for latent_dim, image_shape in ((100, (1, 28, 28)), (12, (1, 8, 8))):
            torch.manual_seed(0)
            model = student_fn(latent_dim, image_shape)
            expect_true(
                isinstance(model, nn.Module),
                f"build_generator should return an nn.Module (e.g. an nn.Sequential), got {type(model).__name__}",
            )
            linear = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
            wanted = [(latent_dim, 256), (256, 512), (512, math.prod(image_shape))]
            expect_true(
                linear == wanted,
                f"for latent_dim={latent_dim} and image_shape={image_shape} the linear layers should be "
                f"{wanted}, but yours are {linear}. Use the arguments (math.prod(image_shape) pixels), "
                "never a hard-coded 784.",
            )
            with torch.no_grad():
                out = model(torch.randn(16, latent_dim) * 3)
            expect_shape(
                out,
                (16, *image_shape),
                f"the output for 16 noise vectors (image_shape={image_shape})",
            )
            expect_true(
                out.min() >= -1 and out.max() <= 1,
                f"pixels should lie in [-1, 1], but yours reach [{out.min():.2f}, {out.max():.2f}]. "
                "End the network with nn.Tanh().",
            )
            expect_true(
                out.min() < -0.05,
                "your pixels never go below 0: that looks like a Sigmoid at the end. The real pictures are scaled "
                "to [-1, 1] for a GAN, so the artist must end with nn.Tanh(), whose outputs cover [-1, 1].",
            )
            expect_true(
                any(isinstance(m, nn.LeakyReLU) for m in model.modules()),
                "use nn.LeakyReLU(0.2) between the linear layers, as the source does: it lets a little gradient "
                "through negative inputs, which helps the artist keep learning.",
            )

    return check("build the MLP generator", test)


def discriminator_probability_reference(discriminator: nn.Module, images01: torch.Tensor) -> torch.Tensor:
    """P(real) for each picture in [0, 1]: convert to [-1, 1], get the logits, squash them with a sigmoid."""
    logits = discriminator(to_signed(images01))
    return torch.sigmoid(logits)


class _ProbeDiscriminator(nn.Module):
    """A stand-in discriminator that remembers the range of what it was shown and returns known logits."""

    def __init__(self, logits: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.logits = logits
        self.image_shape = image_shape
        self.seen_min = math.inf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_min = min(self.seen_min, float(x.min()))
        return self.logits[: x.shape[0]].clone()


def check_discriminator_probability(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(discriminator, images01) -> tensor N``: the discriminator's P(real) for each picture."""

    def test() -> None:
        logits = torch.tensor([-3.0, 0.0, 2.0, 5.0, -0.5])
        images = torch.rand(5, 1, 8, 8)
        probe = _ProbeDiscriminator(logits, (1, 8, 8))
        with torch.no_grad():
            got = student_fn(probe, images)
        expect_true(
            probe.seen_min < 0,
            "the discriminator was shown pictures in [0, 1], but it learned on pictures in [-1, 1] (the artist's Tanh "
            "range). Convert first with data.to_signed(images01) (that is, images01 * 2 - 1).",
        )
        expect_shape(got, (5,), "the probabilities for 5 pictures")
        got = got.detach()
        expect_true(
            bool(got.min() >= 0) and bool(got.max() <= 1),
            f"probabilities lie in [0, 1], but yours reach [{got.min():.2f}, {got.max():.2f}]: those are the raw "
            "logits. Squash them with torch.sigmoid.",
        )
        expect_true(
            not torch.allclose(got, torch.ones_like(got)),
            "every probability is 1: a softmax over a single output is always 1. Use torch.sigmoid for one logit.",
        )
        expect_close(got, torch.sigmoid(logits), "the probabilities", hint="P(real) = torch.sigmoid(logit).")
        # On a real discriminator too.
        torch.manual_seed(0)
        discriminator = MLPDiscriminator((1, 8, 8))
        with torch.no_grad():
            expect_close(
                student_fn(discriminator, images),
                discriminator_probability_reference(discriminator, images),
                "P(real) from a real discriminator",
            )

    return check("the discriminator's probability", test)


# =========================================================================== notebook 04


def discriminator_loss_reference(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The stable discriminator loss: BCE with logits, real pictures labelled 1, fakes labelled 0 (summed)."""
    return losses.discriminator_loss(real_logits, fake_logits)


def check_discriminator_loss(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(real_logits, fake_logits) -> scalar``: the stable discriminator loss on logits."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        real, fake = torch.randn(8, generator=g) * 2, torch.randn(6, generator=g) * 2
        got = student_fn(real, fake)
        expect_true(
            isinstance(got, torch.Tensor) and got.numel() == 1,
            "the loss should be one number (a tensor with one element): average over each batch with .mean().",
        )
        expected = discriminator_loss_reference(real, fake)
        swapped = losses.discriminator_loss(fake, real)
        if torch.allclose(got.detach().double(), swapped.double(), rtol=1e-4) and not torch.allclose(swapped, expected):
            raise ExerciseError(
                "the labels are swapped: the discriminator should call REAL pictures real (label 1) and FAKES "
                "fake (label 0)."
            )
        expect_close(
            got,
            expected,
            "the loss on moderate logits",
            hint="Use F.binary_cross_entropy_with_logits(real_logits, ones) + "
            "F.binary_cross_entropy_with_logits(fake_logits, zeros): the sum of both halves, each averaged.",
        )
        # A confident discriminator: the naive log(sigmoid(...)) form overflows here.
        real, fake = torch.tensor([30.0, -120.0, 2.0]), torch.tensor([-30.0, 120.0])
        got = student_fn(real, fake)
        expect_true(
            bool(torch.isfinite(got).all()),
            "on a very confident discriminator (logits of +-120) your loss is inf or NaN: sigmoid rounds to exactly 0 "
            "or 1 and log(0) = -inf. Compute it from the logits with F.binary_cross_entropy_with_logits.",
        )
        expect_close(
            got,
            discriminator_loss_reference(real, fake),
            "the loss on very confident logits (+-30, +-120)",
            hint="F.binary_cross_entropy (on probabilities) clamps log(0) to -100; the logits version is exact.",
        )

    return check("the discriminator loss", test)


def _tiny_gan(seed: int = 0) -> GAN:
    torch.manual_seed(seed)
    return GAN(MLPGenerator(4, (1, 8, 8), hidden_dims=(16,)), MLPDiscriminator((1, 8, 8), hidden_dims=(16,)))


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _close(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.allclose(p, q, atol=1e-6, rtol=1e-5) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def discriminator_step_reference(model: GAN, optimizer_d: torch.optim.Optimizer, real: torch.Tensor) -> float:
    """One discriminator step: fakes from fresh noise (detached), stable loss, zero_grad, backward, step."""
    fake = model.generator(model.noise(real.shape[0]))
    loss = losses.discriminator_loss(model.discriminator(real), model.discriminator(fake.detach()))
    optimizer_d.zero_grad()
    loss.backward()
    optimizer_d.step()
    return loss.item()


def _run_discriminator_step(step_fn: Callable, model: GAN, real: torch.Tensor, junk_grad: bool) -> tuple[GAN, object]:
    optimizer = torch.optim.SGD(model.discriminator.parameters(), lr=0.5)
    if junk_grad:  # gradients left over from an earlier step: zero_grad() must clear them
        for p in model.discriminator.parameters():
            p.grad = torch.full_like(p, 0.3)
    torch.manual_seed(7)
    result = step_fn(model, optimizer, real)
    return model, result


def check_discriminator_step(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(model, optimizer_d, real) -> float``: one optimisation step of the discriminator only."""

    def test() -> None:
        real = to_signed(torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(3)))
        student, loss = _run_discriminator_step(student_fn, _tiny_gan(), real, junk_grad=True)
        reference, expected = _run_discriminator_step(discriminator_step_reference, _tiny_gan(), real, junk_grad=True)
        expect_true(
            isinstance(loss, float | int) or (isinstance(loss, torch.Tensor) and loss.numel() == 1),
            f"return the loss as a number (loss.item()), got {type(loss).__name__}",
        )
        expect_true(
            _same(student.generator, reference.generator),
            "the generator's weights changed: the discriminator's step must only update the discriminator "
            "(optimizer_d).",
        )
        generator_grads = [p.grad for p in student.generator.parameters() if p.grad is not None]
        expect_true(
            all(float(g.abs().sum()) == 0 for g in generator_grads),
            "the discriminator's loss sent gradients into the generator: call fake.detach() before showing the fakes "
            "to the discriminator, so that backward() stops at the fakes (the artist is not trained in this step).",
        )
        expect_close(
            loss,
            expected,
            "the returned loss",
            hint="Use losses.discriminator_loss(real_logits, fake_logits) on fakes from model.noise(n) (n = "
            "real.shape[0]): real pictures are labelled real, fakes fake.",
        )
        if not _close(student.discriminator, reference.discriminator):
            forgot, _ = _run_discriminator_step(_without_zero_grad, _tiny_gan(), real, junk_grad=True)
            if _close(student.discriminator, forgot.discriminator):
                raise ExerciseError(
                    "the update used gradients left over from before: call optimizer_d.zero_grad() before "
                    "loss.backward(), or the old gradients are added to the new ones."
                )
            raise ExerciseError(
                "the loss is right but the discriminator's weights did not move as expected: call "
                "optimizer_d.zero_grad(), loss.backward() and optimizer_d.step(), once each, in that order."
            )

    return check("one discriminator step", test)


def _without_zero_grad(model: GAN, optimizer_d: torch.optim.Optimizer, real: torch.Tensor) -> float:
    fake = model.generator(model.noise(real.shape[0]))
    loss = losses.discriminator_loss(model.discriminator(real), model.discriminator(fake.detach()))
    loss.backward()
    optimizer_d.step()
    return loss.item()


def generator_step_reference(model: GAN, optimizer_g: torch.optim.Optimizer, batch_size: int) -> float:
    """One artist step: paint fakes, make the discriminator call them real (non-saturating loss), update the artist."""
    fake = model.generator(model.noise(batch_size))
    loss = losses.generator_loss(model.discriminator(fake))
    optimizer_g.zero_grad()
    loss.backward()
    optimizer_g.step()
    return loss.item()


def _saturating_step(model: GAN, optimizer_g: torch.optim.Optimizer, batch_size: int) -> float:
    loss = losses.generator_loss_saturating(model.discriminator(model.generator(model.noise(batch_size))))
    optimizer_g.zero_grad()
    loss.backward()
    optimizer_g.step()
    return loss.item()


def _run_generator_step(step_fn: Callable, batch_size: int = 10) -> tuple[GAN, GAN, object]:
    model = _tiny_gan(1)
    before = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.generator.parameters(), lr=0.5)
    torch.manual_seed(11)
    result = step_fn(model, optimizer, batch_size)
    return model, before, result


def check_generator_step(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(model, optimizer_g, batch_size) -> float``: one optimisation step of the artist only."""

    def test() -> None:
        student, before, loss = _run_generator_step(student_fn)
        reference, _, expected = _run_generator_step(generator_step_reference)
        expect_true(
            isinstance(loss, float | int) or (isinstance(loss, torch.Tensor) and loss.numel() == 1),
            f"return the loss as a number (loss.item()), got {type(loss).__name__}",
        )
        expect_true(
            _same(student.discriminator, before.discriminator),
            "the discriminator's weights changed: the artist's step must only update the artist (optimizer_g.step()).",
        )
        expect_true(
            not _same(student.generator, before.generator),
            "the generator did not change. Did you call optimizer_g.step()? Or detach() the fakes? Here the "
            "gradient must flow back through the discriminator into the artist, so no detach() in this step.",
        )
        saturating, _, saturating_loss = _run_generator_step(_saturating_step)
        if _close(student.generator, saturating.generator) or (
            isinstance(loss, float | int | torch.Tensor) and math.isclose(float(loss), saturating_loss, rel_tol=1e-4)
        ):
            raise ExerciseError(
                "that is the saturating minimax loss log(1 - D(G(z))): its gradient vanishes while the discriminator "
                "easily spots the fakes. Use the non-saturating form: BCE with logits against the label REAL (1)."
            )
        expect_close(
            loss,
            expected,
            "the returned loss",
            hint="losses.generator_loss(model.discriminator(fake)) is BCE with logits against the label 1 (real): "
            "the artist wants the discriminator to say 'real'. Labelling the fakes 0 here trains the artist to "
            "look fake.",
        )
        expect_true(
            _close(student.generator, reference.generator),
            "the loss is right but the artist's weights did not move as expected: call optimizer_g.zero_grad(), "
            "loss.backward() and optimizer_g.step() once each, with noise from model.noise(batch_size).",
        )

    return check("one generator step", test)


# =========================================================================== notebook 04: WGAN-GP


def gradient_penalty_reference(
    discriminator: Callable, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP's penalty ``mean((|grad D(x_hat)| - 1)^2)`` at ``x_hat = epsilon real + (1 - epsilon) fake``."""
    return losses.gradient_penalty(discriminator, real, fake, epsilon)


class _Linear(nn.Module):
    """D(x) = w . x: the gradient is w at every point, so the penalty is (|w| - 1)^2 whatever the points."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum(dim=1, keepdim=True)


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    """D(x) = |x|^2 / 2: the gradient at x is x itself, so where it is taken shows in the penalty."""
    return 0.5 * x.pow(2).sum(dim=1, keepdim=True)


def check_gradient_penalty(student_fn: Callable) -> CheckResult:
    """Check ``student_fn(discriminator, real, fake, epsilon) -> scalar``: WGAN-GP's penalty, differentiable."""

    def test() -> None:
        real, fake = torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([[0.0, 0.0], [0.0, -1.0]])
        epsilon = torch.tensor([[0.2], [0.5]])  # x_hat = (0.6, 0) and (0, 1): a penalty of 0.08
        got = student_fn(_Linear([3.0, 4.0]), real.clone(), fake.clone(), epsilon)
        expect_true(
            isinstance(got, torch.Tensor) and got.numel() == 1,
            "the penalty should be one number (a tensor with one element): average over the batch with .mean(). "
            "Did you forget return?",
        )
        value = float(got.detach())
        mistakes = {  # D(x) = 3 x1 + 4 x2 has gradient norm 5 everywhere
            5.0: "that is the gradient norm |grad D| itself; the penalty is (|grad D| - 1)^2, zero when the norm is 1",
            25.0: "that is the squared norm |grad D|^2; the penalty is (|grad D| - 1)^2, with the norm, not its square",
            576.0: "you squared the norm before subtracting 1: use (|grad D| - 1)^2, the norm from .norm(dim=1)",
            4.0: "you forgot to square: the penalty is (|grad D| - 1)^2",
        }
        for wrong, message in mistakes.items():
            if math.isclose(value, wrong, rel_tol=1e-4):
                raise ExerciseError(message + ".")
        expect_close(got, 16.0, "the penalty of D(x) = 3 x1 + 4 x2 (gradient norm 5)", hint="(5 - 1)^2 = 16.")
        # Where the gradient is taken: D(x) = |x|^2 / 2 has gradient x.
        got = student_fn(_quadratic, real.clone(), fake.clone(), epsilon)
        expected = gradient_penalty_reference(_quadratic, real, fake, epsilon)
        at = {
            "the real points": (real.norm(dim=1) - 1).pow(2).mean(),
            "the fake points": (fake.norm(dim=1) - 1).pow(2).mean(),
            "epsilon * fake + (1 - epsilon) * real (the mix is the other way round)": (
                (epsilon * fake + (1 - epsilon) * real).norm(dim=1) - 1
            )
            .pow(2)
            .mean(),
        }
        for where, wrong in at.items():
            if torch.allclose(torch.as_tensor(got).detach(), wrong) and not torch.allclose(wrong, expected):
                raise ExerciseError(
                    f"the gradient was taken at {where}. Take it at the interpolates x_hat = epsilon * real + "
                    "(1 - epsilon) * fake: torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)."
                )
        expect_close(got, expected, "the penalty of D(x) = |x|^2 / 2, whose gradient at x is x",
                     hint="the gradient must be taken at x_hat = epsilon * real + (1 - epsilon) * fake.")  # fmt: skip
        # The penalty must train the discriminator: its gradient has to flow back to D's weights.
        d = _Linear([3.0, 4.0])
        penalty = student_fn(d, real.clone(), fake.clone(), epsilon)
        expect_true(
            penalty.requires_grad,
            "the penalty is cut off from the discriminator's weights, so it cannot train it: pass create_graph=True "
            "to torch.autograd.grad, which keeps the gradient itself differentiable.",
        )
        penalty.backward()
        expect_close(d.w.grad, torch.tensor([4.8, 6.4]), "the penalty's gradient with respect to D's weights",
                     hint="d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|; create_graph=True makes it flow.")  # fmt: skip

    return check("the gradient penalty", test)
