"""The VAE checks pass the reference solutions, name plausible mistakes, and wait politely for a stub."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import losses
from course_utils.exercises import ExerciseError
from course_utils.exercises.vae import (
    check_kl_divergence,
    check_log_mean_exp,
    check_reparameterize,
    check_vae_loss,
    log_mean_exp_reference,
)
from course_utils.models.autoencoder import reparameterize


def stub(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("check_fn", [check_reparameterize, check_kl_divergence, check_vae_loss, check_log_mean_exp])
def test_a_stub_is_reported_as_not_implemented(check_fn, capsys):
    assert not check_fn(stub)
    assert "not implemented yet" in capsys.readouterr().out


def test_reparameterize_reference_passes(capsys):
    assert check_reparameterize(reparameterize)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda mu, logvar: mu + torch.exp(logvar) * torch.randn_like(mu), "Don't forget the 0.5"),
        (lambda mu, logvar: mu + logvar * torch.randn_like(mu), "LOG of the VARIANCE"),
        (lambda mu, logvar: mu + torch.exp(0.5 * logvar) * torch.rand_like(mu), "torch.rand"),
        (lambda mu, logvar: mu * 1.0 + 0 * logvar, "no randomness"),
        (lambda mu, logvar: torch.normal(mu, torch.exp(0.5 * logvar)), "cuts the gradient"),
        (
            lambda mu, logvar: torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).sample(),
            "cuts the gradient",
        ),
        (lambda mu, logvar: mu + torch.exp(0.5 * logvar.detach()) * torch.randn_like(mu), "no gradient reaches"),
    ],
)
def test_reparameterize_mistakes_get_a_specific_hint(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_reparameterize(wrong)


def test_kl_reference_passes():
    assert check_kl_divergence(losses.kl_divergence)


def _kl_terms(mu, logvar):
    return 1 + logvar - mu.pow(2) - logvar.exp()


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda mu, logvar: -_kl_terms(mu, logvar).sum(1), "factor 0.5"),
        (lambda mu, logvar: 0.5 * _kl_terms(mu, logvar).sum(1), "sign is flipped"),
        (lambda mu, logvar: -0.5 * _kl_terms(mu, logvar).mean(1), "SUM them"),
        (lambda mu, logvar: -0.5 * _kl_terms(mu, logvar).sum(), "single number"),
        (lambda mu, logvar: -0.5 * (1 + logvar.log() - mu.pow(2) - logvar).sum(1), "log of logvar"),
        (lambda mu, logvar: -0.5 * (1 + logvar.exp() - mu.pow(2) - logvar).sum(1), "swapped"),
    ],
)
def test_kl_mistakes_get_a_specific_hint(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_kl_divergence(wrong)


def reference_vae_loss(x_hat, x, mu, logvar, beta):
    return losses.vae_loss(x_hat, x, mu, logvar, beta=beta).loss


def test_vae_loss_reference_passes():
    assert check_vae_loss(reference_vae_loss)


def _kl(mu, logvar):
    return losses.kl_divergence(mu, logvar)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x_hat, x, mu, lv, beta: F.binary_cross_entropy(x_hat, x) + beta * _kl(mu, lv).mean(), "averaged over"),
        (lambda x_hat, x, mu, lv, beta: losses.vae_loss(x_hat, x, mu, lv).loss, "beta is not used"),
        (
            lambda x_hat, x, mu, lv, beta: (beta * losses.reconstruction_loss(x_hat, x) + _kl(mu, lv)).mean(),
            "wrong term",
        ),
        (lambda x_hat, x, mu, lv, beta: losses.reconstruction_loss(x_hat, x).mean(), "KL is missing"),
        (lambda x_hat, x, mu, lv, beta: losses.reconstruction_loss(x_hat, x) + beta * _kl(mu, lv), "one number"),
    ],
)
def test_vae_loss_mistakes_get_a_specific_hint(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_vae_loss(wrong)


# --------------------------------------------------------------------------- the importance-weighted bound


def _naive_log_mean_exp(log_weights):
    return log_weights.exp().mean(dim=0).log()  # no max-subtraction: exp(-1000) = 0


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_naive_log_mean_exp, "log\\(0\\) = -inf"),
        (lambda w: w.mean(dim=0), "the ELBO itself"),
        (lambda w: torch.logsumexp(w, dim=0), "divide by K"),
        (lambda w: torch.logsumexp(w, dim=1) - math.log(w.shape[1]), "dim 0"),
        (lambda w: torch.logsumexp(w.flatten(), dim=0), "single number"),
        (lambda w: torch.logsumexp(w, dim=0) - w.shape[0], "not right"),  # K instead of log K
        (lambda w: None, "forget return"),
    ],
)
def test_log_mean_exp_mistakes_get_a_hint(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_log_mean_exp(wrong)


def test_log_mean_exp_reference_and_a_hand_written_stable_answer_pass(capsys):
    def by_hand(log_weights):
        top = log_weights.max(dim=0).values
        return top + (log_weights - top).exp().mean(dim=0).log()

    assert check_log_mean_exp(log_mean_exp_reference)
    assert check_log_mean_exp(by_hand)
    assert capsys.readouterr().out.count("passed") == 2
