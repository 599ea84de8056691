"""The autoencoder checks pass the references and name plausible mistakes (stubs: test_exercise_checks.py)."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import losses
from course_utils.exercises import ExerciseError
from course_utils.exercises.autoencoder import check_add_noise, check_reconstruction_error


def test_reconstruction_error_reference_passes(capsys):
    assert check_reconstruction_error(lambda x_hat, x: losses.reconstruction_loss(x_hat, x).mean())
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x_hat, x: F.binary_cross_entropy(x_hat, x), "averaged over the pixels"),
        (lambda x_hat, x: F.binary_cross_entropy(x, x_hat, reduction="none").sum((1, 2, 3)).mean(), "swapped"),
        (lambda x_hat, x: -losses.reconstruction_loss(x_hat, x).mean(), "sign"),
        (lambda x_hat, x: losses.reconstruction_loss(x_hat, x).sum(), "summed over the batch"),
        (lambda x_hat, x: losses.reconstruction_loss(x_hat, x), "one number"),
        (lambda x_hat, x: ((x_hat - x) ** 2).sum((1, 2, 3)).mean(), "not right"),
        (lambda x_hat, x: None, "forget return"),
    ],
)
def test_reconstruction_error_mistakes_get_a_specific_hint(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_reconstruction_error(wrong)


def reference_add_noise(images, noise_std):
    return (images + noise_std * torch.randn_like(images)).clamp(0, 1)


def test_add_noise_reference_passes():
    assert check_add_noise(reference_add_noise)


def _in_place(images, noise_std):
    images += noise_std * torch.randn_like(images)
    return images.clamp_(0, 1)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda images, noise_std: images + noise_std * torch.randn_like(images), "clamp"),
        (lambda images, noise_std: (images + noise_std * torch.rand_like(images)).clamp(0, 1), "uniform"),
        (lambda images, noise_std: (images + torch.randn_like(images)).clamp(0, 1), "Multiply"),
        (lambda images, noise_std: images.clone(), "unchanged"),
        (_in_place, "in place"),
    ],
)
def test_add_noise_mistakes_get_a_specific_hint(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_add_noise(wrong)
