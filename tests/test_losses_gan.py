"""The GAN losses: the naive textbook form breaks where the stable forms do not.

References are written independently: the binary cross-entropy by hand in float64, and the
gradients of the generator losses from their closed forms.
"""

import pytest
import torch

from course_utils import losses


def _bce64(logits: torch.Tensor, label: float) -> torch.Tensor:
    """Binary cross-entropy from first principles, in float64 (accurate for moderate logits)."""
    p = torch.sigmoid(logits.double())
    return -(label * torch.log(p) + (1 - label) * torch.log(1 - p)).mean()


def test_stable_losses_match_the_textbook_where_it_is_finite():
    torch.manual_seed(0)
    real, fake = torch.randn(50) * 3, torch.randn(40) * 3
    expected_d = _bce64(real, 1.0) + _bce64(fake, 0.0)
    torch.testing.assert_close(losses.discriminator_loss(real, fake).double(), expected_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        losses.discriminator_loss_naive(torch.sigmoid(real), torch.sigmoid(fake)).double(),
        expected_d,
        rtol=1e-4,
        atol=1e-5,
    )
    torch.testing.assert_close(losses.generator_loss(fake).double(), _bce64(fake, 1.0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        losses.generator_loss_naive(torch.sigmoid(fake)).double(), _bce64(fake, 1.0), rtol=1e-4, atol=1e-5
    )
    # Minimax form: mean(log(1 - D(G(z)))) = -BCE(fake, label 0).
    torch.testing.assert_close(
        losses.generator_loss_saturating(fake).double(), -_bce64(fake, 0.0), rtol=1e-5, atol=1e-6
    )


def test_label_smoothing_changes_only_the_real_target():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    expected = _bce64(real, 0.9) + _bce64(fake, 0.0)
    torch.testing.assert_close(losses.discriminator_loss(real, fake, real_label=0.9).double(), expected)
    with pytest.raises(ValueError, match="real_label"):
        losses.discriminator_loss(real, fake, real_label=0.3)


def test_naive_discriminator_loss_overflows_on_a_confident_discriminator():
    # A discriminator very sure of itself: logit 20 for a real picture (sigmoid rounds to exactly 1.0 in
    # float32), and a fake it wrongly calls real with logit 20.
    real_logits = torch.tensor([20.0, 3.0], requires_grad=True)
    fake_logits = torch.tensor([20.0, -3.0], requires_grad=True)
    naive = losses.discriminator_loss_naive(torch.sigmoid(real_logits), torch.sigmoid(fake_logits))
    assert torch.isinf(naive)  # log(1 - 1.0) = -inf
    naive.backward()
    assert not torch.isfinite(fake_logits.grad).all()  # the update would destroy the weights
    real_logits.grad, fake_logits.grad = None, None
    stable = losses.discriminator_loss(real_logits, fake_logits)
    assert torch.isfinite(stable) and 9 < stable < 11  # ~ (0 + 20 + 3 + small) / 2
    stable.backward()
    assert torch.isfinite(fake_logits.grad).all()
    # d/dl BCE(l, 0) = sigmoid(l) / n: the wrongly trusted fake gets the full push of 1/2.
    torch.testing.assert_close(fake_logits.grad[0], torch.tensor(0.5))


def test_naive_generator_loss_gives_inf_and_nan_when_the_discriminator_is_sure():
    fake_logits = torch.tensor([-120.0, -2.0], requires_grad=True)  # sigmoid(-120) = 0.0 in float32
    naive = losses.generator_loss_naive(torch.sigmoid(fake_logits))
    assert torch.isinf(naive)
    naive.backward()
    assert torch.isnan(fake_logits.grad).any()
    fake_logits.grad = None
    stable = losses.generator_loss(fake_logits)
    assert torch.isfinite(stable)
    stable.backward()
    # d/dl softplus(-l) = sigmoid(l) - 1: a strong, finite push of about -1/n for the worst fake.
    expected = (torch.sigmoid(fake_logits.detach().double()) - 1) / 2
    torch.testing.assert_close(fake_logits.grad.double(), expected)


def test_saturating_generator_loss_vanishes_where_the_non_saturating_one_does_not():
    # Early in training the discriminator rejects fakes confidently: logits around -10.
    logits = torch.full((8,), -10.0, requires_grad=True)
    losses.generator_loss_saturating(logits).backward()
    saturating = logits.grad.abs().sum().item()
    logits.grad = None
    losses.generator_loss(logits).backward()
    non_saturating = logits.grad.abs().sum().item()
    assert saturating < 1e-4  # sum of sigmoid(-10) / 8 over 8 logits ~ 4.5e-5
    assert non_saturating > 0.99  # sum of (1 - sigmoid(-10)) / 8 ~ 1
    # Both push in the same direction: make the discriminator's logit larger.
    assert logits.grad.lt(0).all()


def test_naive_losses_refuse_logits():
    with pytest.raises(ValueError, match="sigmoid"):
        losses.discriminator_loss_naive(torch.tensor([2.0]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="sigmoid"):
        losses.generator_loss_naive(torch.tensor([-0.5]))
