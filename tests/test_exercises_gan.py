"""Notebooks 03 and 04's checks: pass on the reference, teach on plausible mistakes (stubs: test_exercise_checks.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import losses
from course_utils.exercises import ExerciseError
from course_utils.exercises import gan as ex


@pytest.mark.parametrize(
    ("check", "reference"),
    [
        (ex.check_build_generator, ex.build_generator_reference),
        (ex.check_discriminator_probability, ex.discriminator_probability_reference),
        (ex.check_discriminator_loss, ex.discriminator_loss_reference),
        (ex.check_discriminator_step, ex.discriminator_step_reference),
        (ex.check_generator_step, ex.generator_step_reference),
        (ex.check_gradient_penalty, ex.gradient_penalty_reference),
    ],
)
def test_references_pass(check, reference, capsys):
    assert check(reference)
    assert "✅" in capsys.readouterr().out


# --------------------------------------------------------------------------- notebook 03


def _generator(last: nn.Module | None, flat: bool = False, hidden: int = 512, pixels: int | None = None):
    def build(latent_dim, image_shape):
        layers = [nn.Linear(latent_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, hidden), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, pixels or math.prod(image_shape)))
        if last is not None:
            layers.append(last)
        if not flat:
            layers.append(nn.Unflatten(1, image_shape))
        return nn.Sequential(*layers)

    return build


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_generator(nn.Sigmoid()), "Sigmoid"),
        (_generator(None), "Tanh"),
        (_generator(nn.Tanh(), flat=True), "shape"),
        (_generator(nn.Tanh(), pixels=784), "hard-coded 784"),
        (_generator(nn.Tanh(), hidden=128), "linear layers"),
    ],
)
def test_generator_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_build_generator(wrong)


def test_generator_with_relu_gets_a_hint():
    def relu_generator(latent_dim, image_shape):
        return nn.Sequential(
            nn.Linear(latent_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 512),
            nn.ReLU(),
            nn.Linear(512, math.prod(image_shape)),
            nn.Tanh(),
            nn.Unflatten(1, image_shape),
        )

    with pytest.raises(ExerciseError, match="LeakyReLU"):
        ex.check_build_generator(relu_generator)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda d, x: torch.sigmoid(d(x)), r"\[-1, 1\]"),  # forgot to_signed
        (lambda d, x: d(x * 2 - 1), "logits"),  # forgot the sigmoid
        (lambda d, x: torch.softmax(d(x * 2 - 1).unsqueeze(1), dim=1).squeeze(1), "softmax"),
        (lambda d, x: 1 - torch.sigmoid(d(x * 2 - 1)), "not right"),  # P(fake)
    ],
)
def test_discriminator_probability_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_discriminator_probability(wrong)


# --------------------------------------------------------------------------- notebook 04


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda r, f: losses.discriminator_loss(f, r), "swapped"),
        (
            lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()),
            "inf or NaN",
        ),
        (lambda r, f: F.binary_cross_entropy_with_logits(r, torch.ones_like(r)), "both halves"),
        (
            lambda r, f: (
                F.binary_cross_entropy(torch.sigmoid(r), torch.ones_like(r))
                + F.binary_cross_entropy(torch.sigmoid(f), torch.zeros_like(f))
            ),
            "clamps",
        ),
        (lambda r, f: torch.stack([losses.discriminator_loss(r, f)] * 2), "one number"),
    ],
)
def test_discriminator_loss_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_discriminator_loss(wrong)


def _d_step(detach: bool = True, zero_grad: bool = True, swap: bool = False, step_both: bool = False):
    def step(model, optimizer_d, real):
        fake = model.generator(model.noise(real.shape[0]))
        shown = fake.detach() if detach else fake
        real_logits, fake_logits = model.discriminator(real), model.discriminator(shown)
        loss = (
            losses.discriminator_loss(fake_logits, real_logits)
            if swap
            else losses.discriminator_loss(real_logits, fake_logits)
        )
        if zero_grad:
            optimizer_d.zero_grad()
        loss.backward()
        optimizer_d.step()
        if step_both:
            torch.optim.SGD(model.generator.parameters(), lr=0.1).step()
        return loss.item()

    return step


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_d_step(detach=False), "detach"),
        (_d_step(zero_grad=False), "zero_grad"),
        (_d_step(swap=True), "the returned loss"),
        (_d_step(detach=False, step_both=True), "only update the discriminator"),
    ],
)
def test_discriminator_step_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_discriminator_step(wrong)


def _g_step(loss_fn, detach: bool = False, step: bool = True, discriminator_too: bool = False):
    def g_step(model, optimizer_g, batch_size):
        fake = model.generator(model.noise(batch_size))
        loss = loss_fn(model.discriminator(fake.detach() if detach else fake))
        optimizer_g.zero_grad()
        if detach:
            loss.backward() if loss.requires_grad else None
        else:
            loss.backward()
        if step:
            optimizer_g.step()
        if discriminator_too:
            torch.optim.SGD(model.discriminator.parameters(), lr=0.1).step()
        return loss.item()

    return g_step


def _bce_fake_label(logits):
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_g_step(losses.generator_loss_saturating), "saturating"),
        (_g_step(_bce_fake_label), "Labelling the fakes 0"),
        (_g_step(losses.generator_loss, step=False), "did not change"),
        (_g_step(losses.generator_loss, detach=True), "no detach"),
        (_g_step(losses.generator_loss, discriminator_too=True), "only update the artist"),
    ],
)
def test_generator_step_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_generator_step(wrong)


# --------------------------------------------------------------------------- notebook 04: WGAN-GP


def _penalty(norm_to_penalty, where="interpolates", create_graph=True):
    def penalty(discriminator, real, fake, epsilon):
        points = {
            "interpolates": epsilon * real + (1 - epsilon) * fake,
            "swapped": epsilon * fake + (1 - epsilon) * real,
            "real": real,
        }[where].requires_grad_(True)
        (grad,) = torch.autograd.grad(discriminator(points).sum(), points, create_graph=create_graph)
        return norm_to_penalty(grad.norm(dim=1)).mean()

    return penalty


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_penalty(lambda n: n), "gradient norm"),  # |grad| instead of (|grad| - 1)^2
        (_penalty(lambda n: n.pow(2)), "squared norm"),
        (_penalty(lambda n: (n.pow(2) - 1).pow(2)), "squared the norm"),
        (_penalty(lambda n: n - 1), "forgot to square"),
        (_penalty(lambda n: (n - 1).pow(2), where="real"), "real points"),
        (_penalty(lambda n: (n - 1).pow(2), where="swapped"), "other way round"),
        (_penalty(lambda n: (n - 1).pow(2), create_graph=False), "create_graph=True"),
        (lambda d, r, f, e: None, "forget return"),
    ],
)
def test_gradient_penalty_mistakes_get_a_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ex.check_gradient_penalty(wrong)
