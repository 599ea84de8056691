"""Pictures for notebooks 01 and 02: reconstructions, interpolation strips, the latent manifold, the explorer."""

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import plotting
from course_utils.models import VAE
from course_utils.widgets import decode_code, latent_explorer


def test_show_reconstructions_draws_one_row_per_tensor():
    x = torch.rand(12, 1, 8, 8)
    fig = plotting.show_reconstructions(x, x.flip(0), x * 0.5, labels=["noisy", "cleaned", "original"], n=5)
    assert len(fig.axes) == 3
    assert [ax.get_ylabel() for ax in fig.axes] == ["noisy", "cleaned", "original"]
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, plotting.image_grid(x[:5], nrow=5))
    plt.close(fig)
    with pytest.raises(ValueError, match="labels"):
        plotting.show_reconstructions(x, x, x, labels=["a", "b"])
    with pytest.raises(ValueError, match="one size"):
        plotting.show_reconstructions(x, torch.rand(12, 1, 28, 28))


def test_interpolate_codes_walks_a_straight_line():
    start, end = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, -2.0], [1.0, 3.0]])
    codes = plotting.interpolate_codes(start, end, steps=5)
    assert codes.shape == (2, 5, 2)
    torch.testing.assert_close(codes[:, 0], start)
    torch.testing.assert_close(codes[:, -1], end)
    torch.testing.assert_close(codes[0, 2], torch.tensor([0.5, -1.0]))
    with pytest.raises(ValueError, match="at least 2"):
        plotting.interpolate_codes(start, end, steps=1)


def test_plot_interpolation_decodes_every_step():
    calls = []

    def decode(z):
        calls.append(z.shape)
        return torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1).expand(-1, 1, 8, 8)

    fig = plotting.plot_interpolation(decode, torch.zeros(3, 4), torch.ones(3, 4), steps=7, title="walk")
    assert calls == [(21, 4)]
    assert fig.axes[0].get_title() == "walk"
    plt.close(fig)


def test_latent_grid_spans_prior_quantiles():
    codes = plotting.latent_grid(latent_dim=3, n=5, dims=(0, 2), span=0.9)
    assert codes.shape == (25, 3)
    assert (codes[:, 1] == 0).all()
    grid = codes.view(5, 5, 3)
    expected = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 5))
    torch.testing.assert_close(grid[0, :, 0], expected)  # left to right along the first row
    torch.testing.assert_close(grid[:, 0, 2], expected.flip(0))  # top row holds the largest z[2]
    with pytest.raises(ValueError, match="two different"):
        plotting.latent_grid(latent_dim=2, dims=(1, 1))


def test_plot_latent_manifold_runs_on_a_vae():
    torch.manual_seed(0)
    model = VAE((1, 8, 8), latent_dim=2, hidden_dim=8)
    fig = plotting.plot_latent_manifold(model.decode, 2, n=4)
    assert fig.axes[0].images[0].get_array().shape == (32, 32)  # 4 x 4 pictures of 8 x 8, no padding
    plt.close(fig)


def test_decode_code_replaces_the_named_dimensions():
    seen = []

    def decode(z):
        seen.append(z.clone())
        return torch.full((1, 1, 8, 8), 0.25)

    base = torch.tensor([1.0, 2.0, 3.0])
    picture = decode_code(decode, base, z0=-1.0, z2=0.5)
    assert picture.shape == (8, 8) and np.allclose(picture, 0.25)
    torch.testing.assert_close(seen[0], torch.tensor([[-1.0, 2.0, 0.5]]))
    torch.testing.assert_close(base, torch.tensor([1.0, 2.0, 3.0]))  # the start code is not changed
    with pytest.raises(ValueError, match="z0 ... z2"):
        decode_code(decode, base, z7=1.0)


def test_latent_explorer_redraws_from_the_model():
    torch.manual_seed(0)
    model = VAE((1, 8, 8), latent_dim=4, hidden_dim=8)
    box = latent_explorer(model.decode, 4, dims=[1, 3])
    sliders = [c for c in box.children if isinstance(c, widgets.FloatSlider)]
    image = next(c for c in box.children if isinstance(c, widgets.Image))
    assert [s.description for s in sliders] == ["z[1]", "z[3]"]
    before = image.value
    sliders[1].value = 2.5
    assert image.value != before
    expected = model.decode(torch.tensor([[0.0, 0.0, 0.0, 2.5]]))[0, 0].detach().numpy()
    np.testing.assert_allclose(decode_code(model.decode, torch.zeros(4), z3=2.5), expected)
    with pytest.raises(ValueError, match="4 numbers"):
        latent_explorer(model.decode, 4, start=torch.zeros(3))
