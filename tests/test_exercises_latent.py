"""The capstone's exercise checks (latent scale, encoding to latents): pass on the reference, teach on mistakes."""

import pytest
import torch

from course_utils.exercises import ExerciseError
from course_utils.exercises import latent as ex


def test_references_pass(capsys):
    assert ex.check_unit_variance_scale(ex.unit_variance_scale_reference)
    assert ex.check_unit_variance_scale(lambda z: 1 / z.std())  # a 0-d tensor is a number too
    assert ex.check_to_latent(ex.to_latent_reference)
    assert capsys.readouterr().out.count("✅") == 3


def test_the_reference_scale_is_what_the_latent_vae_uses():
    from course_utils.models import LatentVAE

    torch.manual_seed(0)
    vae = LatentVAE((1, 8, 8), latent_channels=2, channels=4, downsamples=1)
    images = torch.rand(32, 1, 8, 8)
    torch.manual_seed(1)
    scale = vae.fit_scale(images)
    torch.manual_seed(1)
    assert scale == pytest.approx(ex.unit_variance_scale_reference(vae.to_latent(images, scaled=False)))


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda z: z.std(), "divide"),
        (lambda z: 1 / z.var(), "variance"),
        (lambda z: 1 / z.abs().mean(), "mean size"),
        (lambda z: 1 / z.pow(2).mean().sqrt(), "root mean square"),
        (lambda z: 1 / z.abs().max(), "largest"),
        (lambda z: 1 / z.std(dim=0), "one number"),
        (lambda z: None, "return"),
        (lambda z: 0.9 / z.std(), "not right"),
    ],
)
def test_scale_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_unit_variance_scale(wrong)


def _draw(vae, x, std_of=lambda logvar: (0.5 * logvar).exp()):
    mu, logvar = vae.encode(x)
    return mu, std_of(logvar) * torch.randn_like(mu)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda vae, x: vae.encode(x)[0] * vae.latent_scale, "same latents"),
        (lambda vae, x: sum(_draw(vae, x)), "not scaled"),
        (lambda vae, x: sum(_draw(vae, x)) / vae.latent_scale, "divided"),
        (lambda vae, x: (lambda m, e: m * vae.latent_scale + e)(*_draw(vae, x)), "noise is not"),
        (lambda vae, x: sum(_draw(vae, x, lambda lv: lv.exp())) * vae.latent_scale, "variance"),
        (lambda vae, x: sum(_draw(vae, x))[:10] * vae.latent_scale, "shape"),
        (lambda vae, x: None, "return"),
        (lambda vae, x: sum(_draw(vae, x, lambda lv: 3 * (0.5 * lv).exp())) * vae.latent_scale, "spread"),
    ],
)
def test_encoding_mistakes_get_a_helpful_message(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_to_latent(wrong)
