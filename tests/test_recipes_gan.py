"""The GAN training step, loop and sampler: repeatable, resumable, and doing what the text says."""

import copy
from dataclasses import replace

import pytest
import torch

from course_utils import data, losses
from course_utils.models import make_gan
from course_utils.recipes.gan import GANConfig, gan_step, make_gan_optimizers, sample_gan, train_gan


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", limit=96, verbose=False)


def test_gan_step_plays_one_round_in_order():
    torch.manual_seed(0)
    model = make_gan("mlp", (1, 8, 8), latent_dim=5)
    before = copy.deepcopy(model)
    opt_g, opt_d = make_gan_optimizers(model, lr_g=1e-3, lr_d=1e-3)
    real = torch.rand(16, 1, 8, 8) * 2 - 1

    torch.manual_seed(1)
    values = gan_step(model, opt_g, opt_d, real)
    assert set(values) == {"d_loss", "g_loss", "D(x)", "D(G(z))"}

    # Reference for the discriminator's half, from the untouched copy and the same noise.
    torch.manual_seed(1)
    z = torch.randn(16, 5)
    fake = before.generator(z)
    real_logits, fake_logits = before.discriminator(real), before.discriminator(fake)
    expected = losses.discriminator_loss(real_logits, fake_logits)
    assert values["d_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert values["D(x)"] == pytest.approx(torch.sigmoid(real_logits).mean().item(), rel=1e-5)
    assert values["D(G(z))"] == pytest.approx(torch.sigmoid(fake_logits).mean().item(), rel=1e-5)
    # Both players moved.
    for new, old in ((model.generator, before.generator), (model.discriminator, before.discriminator)):
        assert any(not torch.equal(a, b) for a, b in zip(new.parameters(), old.parameters(), strict=True))


def test_discriminator_step_never_moves_the_generator():
    torch.manual_seed(0)
    model = make_gan("mlp", (1, 8, 8), latent_dim=5)
    before = copy.deepcopy(model)
    opt_d = torch.optim.SGD(model.discriminator.parameters(), lr=0.1)
    opt_g = torch.optim.SGD(model.generator.parameters(), lr=0.1)
    # Count the gradients that reach the generator: only its own loss may send one.
    arrivals = []
    for p in model.generator.parameters():
        p.register_hook(lambda grad: arrivals.append(grad))
    real = torch.rand(8, 1, 8, 8) * 2 - 1
    torch.manual_seed(1)
    gan_step(model, opt_g, opt_d, real)
    assert len(arrivals) == len(list(model.generator.parameters()))

    # Reference: the discriminator learns on detached fakes, then the generator takes one step on its own loss
    # through the updated discriminator. The generator must end exactly there, nothing more.
    torch.manual_seed(1)
    z = torch.randn(8, 5)
    fake = before.generator(z)
    d_loss = losses.discriminator_loss(before.discriminator(real), before.discriminator(fake.detach()))
    d_grads = torch.autograd.grad(d_loss, list(before.discriminator.parameters()))
    with torch.no_grad():
        for p, g in zip(before.discriminator.parameters(), d_grads, strict=True):
            p -= 0.1 * g
    g_grads = torch.autograd.grad(
        losses.generator_loss(before.discriminator(fake)), list(before.generator.parameters())
    )
    for new, old, grad in zip(model.generator.parameters(), before.generator.parameters(), g_grads, strict=True):
        torch.testing.assert_close(new, old - 0.1 * grad)
    # After the discriminator's update, the same pictures are told apart better than before.
    with torch.no_grad():
        after = losses.discriminator_loss(model.discriminator(real), model.discriminator(fake))
    assert after < d_loss


def test_training_is_seeded_and_repeatable(digits):
    settings = GANConfig(epochs=2, kind="dcgan", channels=4, latent_dim=8, batch_size=32, seed=3)
    _, first = train_gan(digits, settings)
    _, second = train_gan(digits, settings)
    _, other = train_gan(digits, replace(settings, seed=4))
    assert len(first.steps["g_loss"]) == 2 * 3  # 96 images / 32 per batch, 2 epochs
    assert first.steps == second.steps
    assert first.steps != other.steps
    assert set(first.epochs) == {"d_loss", "g_loss", "D(x)", "D(G(z))"}


def test_checkpoint_resume_and_snapshots(digits, tmp_path):
    path = tmp_path / "gan.pt"
    settings = GANConfig(kind="mlp", latent_dim=4, batch_size=48, n_snapshot=6, epochs=2)
    snaps: list = []
    model, history = train_gan(digits, settings, snapshots=snaps, checkpoint=path)
    assert [epoch for epoch, _ in snaps] == [1, 2]
    assert snaps[0][1].shape == (6, 1, 8, 8) and 0 <= snaps[0][1].min() and snaps[0][1].max() <= 1
    assert [path.name] == [p.name for p in tmp_path.iterdir()]  # the snapshots live in the checkpoint, no side-file

    # A second call loads the finished run: same weights, same history, snapshots restored.
    again: list = []
    loaded, loaded_history = train_gan(digits, settings, snapshots=again, checkpoint=path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert loaded_history.epochs == history.epochs
    assert [e for e, _ in again] == [1, 2]
    torch.testing.assert_close(again[1][1], snaps[1][1])

    # Asking for more epochs resumes after epoch 2.
    more: list = []
    _, longer = train_gan(digits, replace(settings, epochs=3), snapshots=more, checkpoint=path)
    assert [e for e, _ in more] == [1, 2, 3]
    assert len(longer.epochs["g_loss"]) == 3


def test_a_run_set_aside_takes_its_snapshots_with_it(digits, tmp_path, capsys):
    path = tmp_path / "gan.pt"
    settings = GANConfig(kind="mlp", latent_dim=4, batch_size=48, n_snapshot=6, epochs=3)
    train_gan(digits, settings, checkpoint=path)
    snaps: list = []
    train_gan(digits, replace(settings, lr_g=5e-4, epochs=2), snapshots=snaps, checkpoint=path)
    assert "lr_g=0.001 in the file, 0.0005 now" in capsys.readouterr().out
    assert [e for e, _ in snaps] == [1, 2]  # the new run's epochs only, never the old run's [1, 2, 3] before them


def test_the_snapshot_count_may_change_between_runs(digits, tmp_path, capsys):
    path = tmp_path / "gan.pt"
    settings = GANConfig(kind="mlp", latent_dim=4, batch_size=48, n_snapshot=4, epochs=1)
    train_gan(digits, settings, checkpoint=path)
    snaps: list = []
    train_gan(digits, replace(settings, n_snapshot=8, epochs=2), snapshots=snaps, checkpoint=path)
    assert "Resuming" in capsys.readouterr().out and not list(tmp_path.glob("*.stale.pt"))
    assert [(e, len(p)) for e, p in snaps] == [(1, 4), (2, 8)]


def test_sample_gan_is_seeded_in_unit_range_and_keeps_the_mode():
    torch.manual_seed(0)
    model = make_gan("dcgan", (1, 8, 8), latent_dim=6, channels=4)
    model.train()
    a, b, c = sample_gan(model, 10, seed=1), sample_gan(model, 10, seed=1), sample_gan(model, 10, seed=2)
    assert a.shape == (10, 1, 8, 8) and a.device.type == "cpu"
    assert 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert model.training  # restored
    with pytest.raises(TypeError, match="GAN"):
        sample_gan(model.generator, 3)
