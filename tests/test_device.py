"""Every helper that takes a model works when the model lives on an accelerator (CUDA or Apple's MPS).

CI has no GPU, so the models live on a simulated device (tests/simulated_device.py): CPU tensors tagged as
being elsewhere, which refuse to mix with untagged CPU tensors, to become NumPy arrays, or to hold float64,
as real CUDA and MPS tensors do. The first tests prove that the simulation catches those mistakes; the
others run each helper with its model on the device.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_utils import checkpoints, config, critic, data, metrics, plotting, text, widgets
from course_utils.models import Classifier
from course_utils.recipes import autoencoder as autoencoder_recipe
from course_utils.recipes import diffusion as diffusion_recipe
from course_utils.recipes import gan as gan_recipe
from course_utils.recipes import guided as guided_recipe
from course_utils.recipes import latent as latent_recipe
from course_utils.recipes import text as text_recipe
from course_utils.recipes.autoencoder import AutoencoderConfig, VAEConfig
from course_utils.recipes.diffusion import DiffusionConfig
from course_utils.recipes.gan import GANConfig
from course_utils.recipes.guided import GuidedDiffusionConfig
from course_utils.recipes.latent import LatentDiffusionConfig, LatentVAEConfig
from course_utils.recipes.text import CharModelConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulated_device import SimulatedDevice, is_on_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["cuda", "mps"])
def sim(request, one_thread):
    with SimulatedDevice(request.param) as simulated:
        yield simulated


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", limit=96, verbose=False)


# ------------------------------------------------------------------ the simulation catches what a GPU would


def test_a_cpu_tensor_fed_to_a_model_on_the_device_raises(sim):
    model = torch.nn.Linear(4, 2).to(config.device())
    assert config.device() == sim.device and next(model.parameters()).device == torch.device(sim.device.type, 0)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        model(torch.zeros(3, 4))
    assert model(torch.zeros(3, 4).to(config.device())).device.type == sim.device.type


@pytest.mark.filterwarnings("ignore:__array__ implementation")  # numpy retries __array__ once without copy=
def test_a_device_tensor_given_to_numpy_or_matplotlib_raises(sim):
    import matplotlib.pyplot as plt

    out = torch.nn.Linear(4, 2).to(sim.device)(torch.ones(1, 4, device=sim.device))
    with pytest.raises(TypeError, match=f"can't convert {sim.device.type}:0 device type tensor to numpy"):
        out.detach().numpy()
    with pytest.raises(TypeError, match="to numpy"):
        np.asarray(out.detach())
    with pytest.raises(TypeError, match="to numpy"):
        plt.imshow(out.detach())
    plt.close("all")
    back = out.detach().cpu()
    assert not is_on_device(back) and back.device.type == "cpu" and np.asarray(back).shape == (1, 2)
    assert is_on_device(out)  # .cpu() copies; the original stays on the device


def test_the_device_refuses_float64_and_cpu_generators(sim):
    x = torch.ones(3, device=sim.device)
    for convert in (lambda: x.double(), lambda: x.to(torch.float64), lambda: x.to("cpu", torch.float64)):
        with pytest.raises(TypeError, match="float64"):
            convert()
    assert x.cpu().double().dtype == torch.float64  # move first, then convert: fine
    with pytest.raises(RuntimeError, match="generator"):
        torch.randn(3, device=sim.device, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="generator"):
        torch.multinomial(torch.ones(2, 3, device=sim.device), 1, generator=torch.Generator())
    assert is_on_device(torch.randn(3, generator=torch.Generator().manual_seed(0)).to(sim.device))


def test_what_real_devices_accept_is_accepted(sim):
    x = torch.arange(6.0).view(2, 3).to(sim.device)
    assert is_on_device(x * torch.tensor(2.0))  # a 0-dim CPU tensor is a scalar
    assert is_on_device(x[torch.tensor([1, 0])])  # CPU indices into a device tensor
    x.copy_(torch.ones(2, 3))  # copy_ across devices
    with pytest.raises(RuntimeError, match="same device"):
        torch.ones(2)[torch.tensor([0], device=sim.device)]  # device indices into a CPU tensor
    with pytest.raises(RuntimeError, match="same device"):
        x + torch.ones(3)
    assert not is_on_device(torch.as_tensor(torch.ones(2)))
    cpu = torch.ones(2)
    on = torch.as_tensor(cpu, device=sim.device)
    assert is_on_device(on) and not is_on_device(cpu)  # the device copy is a copy
    back = torch.as_tensor(on, device="cpu")
    assert not is_on_device(back) and is_on_device(on)
    # Tensors made "like" a device tensor are on the device too, unless told otherwise.
    assert all(is_on_device(t) for t in (x.new_zeros(2), x.new_tensor([1.0]), torch.randn_like(x), cpu.type_as(x)))
    assert not any(is_on_device(t) for t in (torch.zeros_like(x, device="cpu"), x.new_ones(2, device="cpu")))


def test_training_on_the_device_keeps_gradients_and_optimizer_state_there(sim):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).to(sim.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randn(16, 4).to(sim.device)
    before = model(x).pow(2).mean().item()
    for _ in range(20):
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    assert loss.item() < before
    weight = model[0].weight
    assert is_on_device(weight) and is_on_device(weight.grad)
    assert is_on_device(optimizer.state[weight]["exp_avg"])
    assert sim.device_ops > 100


def test_a_file_saved_from_the_device_needs_map_location(sim, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2, device=sim.device)}, path)
    with pytest.raises(RuntimeError, match="map_location"):
        torch.load(path, weights_only=True)
    assert not is_on_device(torch.load(path, map_location="cpu", weights_only=True)["w"])
    assert is_on_device(torch.load(path, map_location=sim.device, weights_only=True)["w"])


def test_the_simulation_switches_off_cleanly():
    original = config.device
    with SimulatedDevice():
        assert config.device().type == "cuda"
    assert config.device is original
    model = torch.nn.Linear(2, 2).to("cpu")
    assert np.asarray(model(torch.ones(1, 2)).detach()).shape == (1, 2)


# ------------------------------------------------------------------ the course's helpers on the device


def _on_device(module: torch.nn.Module) -> bool:
    return all(is_on_device(p) for p in module.parameters())


def test_autoencoder_helpers_on_the_device(sim, digits):
    settings = AutoencoderConfig(latent_dim=4, width=16, noise_std=0.2, mask_size=2)
    model, _ = autoencoder_recipe.train_autoencoder(digits, settings)
    assert _on_device(model)
    codes = autoencoder_recipe.encode_images(model, digits.images[:10])
    assert codes.shape == (10, 4) and not is_on_device(codes)
    like = autoencoder_recipe.sample_autoencoder(model, 5, like=digits.images)
    assert not is_on_device(like) and like.shape == (5, 1, 8, 8)
    x = digits.images[:4].to(sim.device)
    with torch.no_grad():
        plotting.show_reconstructions(x, model(x), autoencoder_recipe.corrupt(x, 0.3, 2, generator=torch.Generator()))
    plotting.plot_latent_scatter(autoencoder_recipe.encode_images(model, digits.images), digits.labels)


def test_vae_helpers_on_the_device(sim, digits):
    path = checkpoints.checkpoint_path("vae", digits)
    model, _ = autoencoder_recipe.train_vae(digits, VAEConfig(latent_dim=2, width=16), checkpoint=path)
    assert _on_device(model)
    assert set(autoencoder_recipe.evaluate_vae(model, digits)) == {"loss", "reconstruction", "kl"}
    assert not is_on_device(autoencoder_recipe.sample_vae(model, 3))
    mu = autoencoder_recipe.encode_images(model, digits.images[:2])  # CPU codes into a decoder on the device
    plotting.plot_interpolation(model.decode, mu[0], mu[1], steps=4)
    plotting.plot_interpolation(model.decode, mu[:1].to(sim.device), mu[1:].to(sim.device), steps=4)
    plotting.plot_latent_manifold(model.decode, latent_dim=2, n=3)
    assert widgets.decode_code(model.decode, mu[0], z1=0.5).shape == (8, 8)
    widgets.latent_explorer(model.decode, 2, start=mu[0].to(sim.device))
    # Loaded again, the checkpoint (saved from the device, read with map_location) fills a model on the device.
    again, _ = autoencoder_recipe.train_vae(digits, VAEConfig(latent_dim=2, width=16), checkpoint=path)
    assert _on_device(again) and torch.equal(
        autoencoder_recipe.sample_vae(again, 3), autoencoder_recipe.sample_vae(model, 3)
    )


def test_gan_helpers_on_the_device(sim, digits, tmp_path):
    path = tmp_path / "gan.pt"
    snapshots: list = []
    settings = GANConfig(kind="mlp", latent_dim=8)
    model, history = gan_recipe.train_gan(digits, settings, checkpoint=path, snapshots=snapshots)
    assert _on_device(model) and not is_on_device(snapshots[-1][1])
    assert not is_on_device(gan_recipe.sample_gan(model, 4))
    plotting.plot_snapshots(snapshots)
    plotting.plot_gan_progress(history, snapshots)
    resumed: list = []
    longer = dataclasses.replace(settings, epochs=2)
    gan_recipe.train_gan(digits, longer, checkpoint=path, snapshots=resumed)  # reads snapshots
    assert len(resumed) == 2


def test_diffusion_helpers_on_the_device(sim, digits):
    settings = DiffusionConfig(channels=(8, 16), timesteps=20, sample_steps=3, batch_size=48, bf16=False)
    model, _ = diffusion_recipe.train_diffusion(digits, settings)
    assert _on_device(model)
    samples = diffusion_recipe.sample_diffusion(model, 3, seed=0)
    assert not is_on_device(samples) and samples.shape == (3, 1, 8, 8)
    _, trajectory = model.sample(2, torch.Generator().manual_seed(0), return_trajectory=True)
    plotting.plot_trajectory(trajectory)
    image = digits.images[0]
    picture = widgets.denoising_picture(model, image, torch.randn(image.shape), t=10)
    assert picture.shape == (8, 26)
    widgets.timestep_explorer(model, image)
    plotting.plot_forward_process(digits.images[:2], model.schedule, timesteps=[0, 19])


def test_diffusion_model_without_bf16_never_enters_autocast(monkeypatch):
    # PyTorch before 2.5 raises "unsupported autocast device_type 'mps'" even for a disabled autocast.
    settings = DiffusionConfig(channels=(8, 16), timesteps=10, sample_steps=2, bf16=False)
    model = diffusion_recipe.make_diffusion((1, 8, 8), settings)

    def refuse(*args, **kwargs):
        raise RuntimeError("User specified an unsupported autocast device_type 'mps'")

    monkeypatch.setattr(torch, "autocast", refuse)
    assert model(torch.zeros(2, 1, 8, 8), torch.tensor([1, 2])).shape == (2, 1, 8, 8)


def test_conditional_models_train_and_sample_on_the_device(sim, digits):
    # The conditional VAE (notebook 02), guided diffusion (06) and both stages of latent diffusion (07): the labels
    # come from the CPU loader, the models live on the device.
    cvae, _ = autoencoder_recipe.train_vae(digits, VAEConfig(kind="cvae", latent_dim=2, width=16))
    assert _on_device(cvae) and not is_on_device(autoencoder_recipe.sample_vae(cvae, 10))
    tiny = GuidedDiffusionConfig(channels=(8, 16), timesteps=20, sample_steps=3, batch_size=48, bf16=False)
    guided, _ = guided_recipe.train_guided_diffusion(digits, tiny)
    assert _on_device(guided) and not is_on_device(guided_recipe.sample_guided(guided, [3, 7], w=2.0))
    vae, _ = latent_recipe.train_latent_vae(digits, LatentVAEConfig(latent_channels=2, channels=8, downsamples=1))
    denoiser_settings = LatentDiffusionConfig(channels=(8,), timesteps=20, sample_steps=3, batch_size=48)
    denoiser, _ = latent_recipe.train_latent_diffusion(digits, vae, denoiser_settings)
    assert _on_device(vae) and _on_device(denoiser)
    pictures = latent_recipe.sample_latent(vae, denoiser, 4)
    assert not is_on_device(pictures) and pictures.shape == (4, 1, 8, 8)


def test_critic_and_metrics_on_the_device(sim, digits):
    classifier = Classifier(digits.image_shape).to(sim.device).eval()
    images = digits.images[:40]
    many = data.load_dataset("digits", "test", verbose=False).images[:300]  # FID in 128-d needs > 128 per side
    assert not is_on_device(critic.predict_proba(classifier, images))
    assert not is_on_device(critic.features(classifier, images.to(sim.device)))
    verdict = critic.judge(classifier, images)
    assert 0 <= verdict["class_entropy_bits"] <= verdict["max_entropy_bits"]
    assert 0 <= critic.accuracy(classifier, digits) <= 1
    scores = critic.evaluate_samples(classifier, many[:150].to(sim.device), many[150:])
    assert scores["fid"] >= 0
    feats = metrics.extract_features(images, classifier.features)
    assert not is_on_device(feats) and feats.shape == (40, 128)
    assert metrics.fid(images[:30], images[10:], lambda x: x.flatten(1)[:, :8]) >= 0
    on_device = feats.to(sim.device)[:, :4]
    mu, sigma = on_device.mean(0), torch.cov(on_device.T)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-3)
    assert (
        metrics.kid(on_device[:20], on_device[20:], n_subsets=2).value
        == metrics.kid(feats[:20, :4], feats[20:, :4], n_subsets=2).value
    )
    assert set(metrics.precision_recall(on_device[:20], on_device[20:], k=2)) == {"precision", "recall"}
    distances, _ = metrics.nearest_neighbours(images[:3].to(sim.device), images.to(sim.device))
    assert torch.allclose(distances, torch.zeros(3, dtype=torch.float64))
    plotting.plot_probabilities(images[:2].to(sim.device), critic.predict_proba(classifier, images[:2]))


def test_text_helpers_on_the_device(sim):
    corpus = text.load_text("julius-caesar", limit=2000, verbose=False)
    settings = CharModelConfig(seq_len=16, batch_size=16, embed_dim=8, hidden_size=16)
    model, _ = text_recipe.train_charmodel(corpus, settings)
    assert _on_device(model)
    assert text.bits_per_char(model, corpus.val_ids[:200]) > 0
    (passage,) = text.generate(model, corpus.vocab, "CAESAR", max_new_tokens=20, seed=0)
    assert passage.startswith("CAESAR") and len(passage) == 26
    ids = corpus.train_ids.to(sim.device)
    assert text.baseline_bits_per_char(text.bigram_probs(ids, len(corpus.vocab)), ids[:300]) > 0
    assert text.baseline_bits_per_char(text.unigram_probs(ids, len(corpus.vocab)), ids[:300]) > 0


def test_a_checkpoint_loads_into_a_model_on_the_device(sim, tmp_path):
    model = torch.nn.Linear(3, 2).to(sim.device)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3, device=sim.device)).sum().backward()
    optimizer.step()
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", {"model": model, "optimizer": optimizer}, epoch=1)
    fresh = torch.nn.Linear(3, 2).to(sim.device)
    fresh_optimizer = torch.optim.Adam(fresh.parameters())
    assert checkpoints.load_checkpoint(path, {"model": fresh, "optimizer": fresh_optimizer}) == {"epoch": 1}
    assert _on_device(fresh) and torch.equal(fresh.weight.cpu(), model.weight.cpu())
    assert is_on_device(fresh_optimizer.state[fresh.weight]["exp_avg"])  # Adam moves its state to the weights


# ------------------------------------------------------------------ every torch.load names where to load


def _torch_load_calls(source: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load"
    ]


def test_every_torch_load_says_where_to_load():
    from IPython.core.inputtransformer2 import TransformerManager

    sources = {p: p.read_text() for p in [*ROOT.glob("course_utils/**/*.py"), *ROOT.glob("tools/*.py")]}
    for notebook in ROOT.glob("notebooks/*.ipynb"):
        cells = nbformat.read(notebook, as_version=4).cells
        code = [TransformerManager().transform_cell(c.source) for c in cells if c.cell_type == "code"]
        sources[notebook] = "\n".join(code)  # magics (%time, !pip) turned into plain Python
    missing = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path, source in sources.items()
        for call in _torch_load_calls(source)
        if not any(k.arg == "map_location" for k in call.keywords)
    ]
    assert missing == [], "torch.load without map_location (a GPU checkpoint fails on a laptop): " + ", ".join(missing)
    assert any(_torch_load_calls(s) for s in sources.values())  # the search does find the calls there are


def test_module_to_cpu_stays_on_the_cpu(sim):
    # Module.to passes non_blocking=False along: a bool is not a CUDA ordinal.
    model = torch.nn.Linear(2, 2).to("cpu")
    assert not any(is_on_device(p) for p in model.parameters())
    assert all(is_on_device(p) for p in model.to(sim.device).parameters())
