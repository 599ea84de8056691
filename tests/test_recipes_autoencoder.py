"""The autoencoder and VAE training recipes: they learn, checkpoint, resume, and sample in the promised shape."""

import pytest
import torch

from course_utils import losses
from course_utils.data import ImageData, load_dataset
from course_utils.models import VAE, Autoencoder, ConditionalVAE, ConvVAE
from course_utils.recipes import autoencoder as recipe


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", limit=256, verbose=False)


def test_corrupt_adds_clamped_noise_and_blanks_one_square():
    images = torch.full((3, 1, 8, 8), 0.5)
    noisy = recipe.corrupt(images, noise_std=0.3, generator=torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, images)
    assert torch.equal(images, torch.full((3, 1, 8, 8), 0.5))  # the clean pictures are untouched
    masked = recipe.corrupt(images, mask_size=3, generator=torch.Generator().manual_seed(0))
    assert ((masked == 0).flatten(1).sum(1) == 9).all()  # exactly one 3x3 square per picture
    with pytest.raises(ValueError, match="larger"):
        recipe.corrupt(images, mask_size=9)


def test_autoencoder_step_lowers_the_loss_on_one_batch():
    torch.manual_seed(0)
    model = Autoencoder((1, 8, 8), latent_dim=4, hidden_dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = torch.rand(16, 1, 8, 8)
    with torch.no_grad():  # the loss the step reports: the model's, on this batch, before it learns from it
        expected = losses.reconstruction_loss(model(images), images).mean().item()
    first = recipe.autoencoder_step(model, optimizer, images)["loss"]
    assert first == pytest.approx(expected, rel=1e-6)
    for _ in range(30):
        last = recipe.autoencoder_step(model, optimizer, images)["loss"]
    assert last < first


def test_vae_step_reports_its_parts():
    torch.manual_seed(0)
    model = VAE((1, 8, 8), latent_dim=2, hidden_dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    values = recipe.vae_step(model, optimizer, torch.rand(8, 1, 8, 8), beta=2.0)
    assert set(values) == {"loss", "reconstruction", "kl"}
    assert values["loss"] == pytest.approx(values["reconstruction"] + 2.0 * values["kl"], rel=1e-5)


def test_train_vae_learns_checkpoints_and_resumes(digits, tmp_path):
    test = load_dataset("digits", "test", limit=128, verbose=False)
    path = tmp_path / "vae.pt"
    untrained = recipe.evaluate_vae(VAE((1, 8, 8), 4, 32), test)["loss"]
    settings = recipe.VAEConfig(epochs=3, latent_dim=4, width=32)
    model, history = recipe.train_vae(digits, settings, checkpoint=path)
    assert path.exists() and len(history.epochs["loss"]) == 3
    assert history.epochs["loss"][-1] < history.epochs["loss"][0]
    trained = recipe.evaluate_vae(model, test)
    assert trained["loss"] < untrained
    assert trained["loss"] == pytest.approx(trained["reconstruction"] + trained["kl"], rel=1e-5)
    again, history_again = recipe.train_vae(digits, settings, checkpoint=path)
    assert history_again.epochs == history.epochs  # loaded, not retrained
    torch.testing.assert_close(recipe.sample_vae(again, 5, seed=1), recipe.sample_vae(model, 5, seed=1))


def test_evaluate_vae_is_repeatable_and_matches_the_loss_function():
    torch.manual_seed(0)
    model = VAE((1, 8, 8), 3, 16)
    data = ImageData(torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.int64), "digits", "random")
    first, second = recipe.evaluate_vae(model, data, seed=3), recipe.evaluate_vae(model, data, seed=3)
    assert first == second
    mu, logvar = model.encode(data.images)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    expected = losses.vae_loss(model.decode(mu + (0.5 * logvar).exp() * eps), data.images, mu, logvar).loss
    assert first["loss"] == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_train_autoencoder_and_its_samples(digits, kind):
    settings = recipe.AutoencoderConfig(epochs=2, kind=kind, latent_dim=3, width=8, noise_std=0.2, mask_size=2)
    model, history = recipe.train_autoencoder(digits, settings)
    assert history.epochs["loss"][-1] < history.epochs["loss"][0]
    samples = recipe.sample_autoencoder(model, 6, seed=0)
    assert samples.shape == (6, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1
    torch.testing.assert_close(samples, recipe.sample_autoencoder(model, 6, seed=0))
    fitted = recipe.sample_autoencoder(model, 6, seed=0, like=digits.images[:50])
    assert fitted.shape == (6, 1, 8, 8) and not torch.allclose(fitted, samples)


def test_sample_vae_decodes_prior_codes():
    torch.manual_seed(0)
    model = VAE((1, 8, 8), 2, 8)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(recipe.sample_vae(model, 4, seed=7), model.decode(z))


def test_encode_images_gives_mu_for_a_vae_and_the_code_for_an_autoencoder():
    torch.manual_seed(0)
    x = torch.rand(7, 1, 8, 8)
    vae, ae = VAE((1, 8, 8), 3, 8), Autoencoder((1, 8, 8), 5, 8)
    torch.testing.assert_close(recipe.encode_images(vae, x, batch_size=3), vae.encode(x)[0])
    torch.testing.assert_close(recipe.encode_images(ae, x, batch_size=3), ae.encode(x))


def test_unknown_kinds_are_explained():
    for settings in (recipe.VAEConfig(kind="resnet"), recipe.AutoencoderConfig(kind="resnet")):
        with pytest.raises(ValueError, match="kind must be 'mlp'"):
            recipe.make_autoencoder((1, 8, 8), settings)
    assert isinstance(recipe.make_autoencoder((1, 8, 8), recipe.VAEConfig(kind="conv", width=4)), ConvVAE)
    assert isinstance(recipe.make_autoencoder((1, 8, 8), recipe.AutoencoderConfig(width=4)), Autoencoder)
    assert isinstance(recipe.make_autoencoder((1, 8, 8), recipe.VAEConfig(kind="cvae", width=4)), ConditionalVAE)
    with pytest.raises(ValueError, match="'mlp' or 'conv'"):  # only a VAE can be conditional
        recipe.make_autoencoder((1, 8, 8), recipe.AutoencoderConfig(kind="cvae"))


def test_the_conditional_vae_preset_is_notebook_02s_network_told_the_class(digits):
    plain, conditional = recipe.vae_preset(digits), recipe.cvae_preset(digits)
    assert conditional.kind == "cvae" and conditional.width == plain.width
    assert conditional.latent_dim < plain.latent_dim  # a smaller code leaves the digit to the label


def test_a_conditional_vae_learns_to_draw_the_digit_it_is_asked_for(digits, tmp_path):
    settings = recipe.VAEConfig(kind="cvae", latent_dim=4, width=64, lr=3e-3, images=12_000)
    path = tmp_path / "cvae.pt"
    model, history = recipe.train_vae(digits, settings, checkpoint=path)
    assert isinstance(model, ConditionalVAE)
    # A budget in pictures: whole passes over the training set that show it 12,000 pictures, give or take half a pass.
    assert abs(history.n_epochs * len(digits) - 12_000) <= len(digits) / 2
    assert history.epochs["loss"][-1] < 0.8 * history.epochs["loss"][0]
    parts = recipe.evaluate_vae(model, digits)
    assert parts["loss"] == pytest.approx(parts["reconstruction"] + parts["kl"])
    # Decoded prior codes look like the mean picture of the class asked for, not like another class's.
    labels = torch.arange(10).repeat(20)
    samples = recipe.sample_vae(model, 200, seed=0, labels=labels)
    assert torch.equal(samples, recipe.sample_vae(model, 200, seed=0, labels=labels))  # seeded
    means = torch.stack([digits.images[digits.labels == k].mean(0) for k in range(10)])
    nearest = ((samples[:, None] - means[None]) ** 2).flatten(2).sum(2).argmin(1)
    assert (nearest == labels).float().mean() > 0.7
    default = recipe.sample_vae(model, 20, seed=0)  # the classes in turn
    torch.testing.assert_close(default, recipe.sample_vae(model, 20, seed=0, labels=torch.arange(20) % 10))
    codes = recipe.encode_images(model, digits.images[:7], batch_size=3, labels=digits.labels[:7])
    torch.testing.assert_close(codes, model.encode(digits.images[:7], digits.labels[:7])[0])
    with pytest.raises(ValueError, match="pass labels"):
        recipe.encode_images(model, digits.images[:7])
    with pytest.raises(ValueError, match="one label per picture"):
        recipe.sample_vae(model, 5, labels=torch.arange(4))
    with pytest.raises(ValueError, match="not conditional"):
        recipe.sample_vae(VAE((1, 8, 8), 2, 8), 4, labels=torch.arange(4))
