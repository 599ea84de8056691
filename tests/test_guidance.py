"""Tests for classifier-free guidance: the mix of two predictions, label dropout, and the guided sampler."""

import pytest
import torch

from course_utils import diffusion, guidance
from course_utils.models import UNet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_guided_eps_is_uncond_at_0_cond_at_1_and_extrapolates_beyond():
    g = torch.Generator().manual_seed(0)
    u, c = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    assert torch.equal(guidance.guided_eps(u, c, 0.0), u)
    assert torch.allclose(guidance.guided_eps(u, c, 1.0), c)
    assert torch.allclose(guidance.guided_eps(u, c, 3.0), c + 2 * (c - u))
    with pytest.raises(ValueError, match="same shape"):
        guidance.guided_eps(u, c[:1], 2.0)


def test_drop_labels_hides_about_p_of_the_labels_with_the_null_token():
    labels = torch.arange(10_000) % 10
    dropped = guidance.drop_labels(labels, 0.1, null_label=10, generator=torch.Generator().manual_seed(0))
    hidden = dropped == 10
    assert 0.09 < hidden.float().mean() < 0.11
    assert torch.equal(dropped[~hidden], labels[~hidden])  # the others are untouched
    assert torch.equal(labels, torch.arange(10_000) % 10)  # the input is not changed in place
    again = guidance.drop_labels(labels, 0.1, null_label=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dropped, again)  # seeded
    assert torch.equal(guidance.drop_labels(labels, 0.0, 10), labels)
    assert (guidance.drop_labels(labels, 1.0, 10) == 10).all()


@pytest.mark.parametrize(
    ("p", "labels"), [(1.5, torch.tensor([1])), (0.1, torch.tensor([1.0])), (0.1, torch.ones(2, 2, dtype=torch.long))]
)
def test_drop_labels_explains_bad_input(p, labels):
    with pytest.raises(ValueError):
        guidance.drop_labels(labels, p, 10)


def _model(shape=(1, 8, 8), channels=(8, 16), clip=1.0):
    torch.manual_seed(0)
    net = UNet(shape, channels=channels, time_dim=16, num_classes=10)
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)  # not the all-zero start: predictions depend on the label
    return guidance.ConditionalDiffusionModel(net, timesteps=50, sample_steps=5, sample_eta=1.0, clip=clip).eval()


def test_guided_prediction_uses_one_batched_call_and_matches_two_separate_ones():
    model = _model()
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    x, t, labels = torch.randn(3, 1, 8, 8), torch.tensor([4, 20, 49]), torch.tensor([1, 7, 10])
    with torch.no_grad():
        got = guidance.guided_prediction(model, x, t, labels, 2.5, model.null_label)
        assert calls == [6]  # one call on the doubled batch
        expected = guidance.guided_eps(model(x, t, torch.full((3,), 10)), model(x, t, labels), 2.5)
        assert torch.allclose(got, expected, atol=1e-5)
        calls.clear()
        assert torch.allclose(guidance.guided_prediction(model, x, t, labels, 0.0, 10), model(x, t), atol=1e-6)
        assert torch.allclose(guidance.guided_prediction(model, x, t, labels, 1.0, 10), model(x, t, labels), atol=1e-6)
        assert calls == [3, 3, 3, 3]  # w = 0 and w = 1 need one half-size call each (plus the two references)


@pytest.mark.parametrize("shape,channels", [((1, 8, 8), (8, 16)), ((1, 28, 28), (8, 16, 16)), ((4, 7, 7), (16,))])
def test_guided_sampler_is_seeded_and_has_the_right_shape(shape, channels):
    model = _model(shape, channels, clip=1.0 if shape[0] == 1 else 3.0)
    labels = [3, 3, 7, 10]
    a = model.sample_classes(labels, w=3.0, generator=torch.Generator().manual_seed(1))
    b = model.sample_classes(labels, w=3.0, generator=torch.Generator().manual_seed(1))
    c = model.sample_classes(labels, w=3.0, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, *shape)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= model.clip + 1e-5  # the last step lands on the clamped guess of the clean data


def test_guidance_scale_changes_the_samples_and_w0_ignores_the_labels():
    model = _model()

    def draw(labels, w):
        return model.sample_classes(labels, w=w, generator=torch.Generator().manual_seed(0))

    assert torch.equal(draw([1, 2], 0.0), draw([5, 6], 0.0))  # w = 0: the unconditional model, labels unused
    assert not torch.equal(draw([1, 2], 1.0), draw([5, 6], 1.0))
    assert not torch.equal(draw([1, 2], 1.0), draw([1, 2], 4.0))
    # Without labels at all, DiffusionModel.sample draws from the unconditional model.
    plain, _ = model.sample(2, torch.Generator().manual_seed(0))
    assert torch.allclose(plain, draw([10, 10], 1.0), atol=1e-4)  # the same maths, rounded in another order


def test_scale_at_guides_only_inside_the_interval_ends_included():
    assert guidance.scale_at(999, 1000, 3.0) == 3.0 and guidance.scale_at(0, 1000, 3.0) == 3.0  # default: everywhere
    assert guidance.scale_at(500, 1000, 3.0, (0.0, 0.5)) == 3.0
    assert guidance.scale_at(501, 1000, 3.0, (0.0, 0.5)) == 1.0  # outside: the plain conditional prediction
    assert guidance.scale_at(99, 1000, 0.0, (0.1, 0.6)) == 1.0 and guidance.scale_at(100, 1000, 0.0, (0.1, 0.6)) == 0.0


def test_describe_interval_says_where_guidance_acts():
    assert guidance.describe_interval(guidance.EVERY_STEP) == "at every step"
    assert guidance.describe_interval((0.0, 0.4)) == "only for t <= 0.4 T"
    assert guidance.describe_interval((0.1, 0.6)) == "only for 0.1 T <= t <= 0.6 T"


@pytest.mark.parametrize("interval", [(0.5, 0.5), (-0.1, 0.5), (0.0, 1.5), (0.6, 0.2), (0.3,)])
def test_a_bad_interval_is_explained(interval):
    with pytest.raises(ValueError, match="interval must be"):
        guidance.scale_at(10, 100, 2.0, interval)
    with pytest.raises(ValueError, match="interval must be"):
        _model().sample_classes([1], w=2.0, interval=interval)
    with pytest.raises(ValueError, match="interval must be"):
        guidance.describe_interval(interval)


def test_limited_interval_guides_only_its_steps():
    """The sampler visits t = 49, 37, 24, 12, 0 of 50: (0, 0.5) guides the last three (doubled batches), and an
    interval that holds no step gives the plain conditional model exactly."""
    model = _model()
    batches = []
    model.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))

    def draw(w, interval=(0.0, 1.0)):
        return model.sample_classes([1, 2], w=w, generator=torch.Generator().manual_seed(0), interval=interval)

    limited = draw(3.0, (0.0, 0.5))
    assert batches == [2, 2, 4, 4, 4]
    assert torch.equal(draw(3.0, (0.0, 1.0)), draw(3.0))
    assert torch.equal(draw(3.0, (0.5, 0.7)), draw(1.0))
    assert not torch.equal(limited, draw(3.0)) and not torch.equal(limited, draw(1.0))


def test_guided_sampler_explains_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="w must be"):
        model.sample_classes([1, 2], w=-1.0)
    with pytest.raises(ValueError, match="one class per image"):
        guidance.guided_ddim_sample(model, torch.tensor([1, 2, 3]), (2, 1, 8, 8), model.schedule, 10)
    with pytest.raises(ValueError, match="class-conditional"):
        guidance.ConditionalDiffusionModel(UNet((1, 8, 8), channels=(8, 16)))


def test_conditional_loss_trains_a_model_that_follows_the_label():
    """Two classes of flat images, +0.8 and -0.8. From pure noise (the last step), only the label can tell
    which one to aim for: after a short training run the guess of the clean image follows the label."""
    torch.manual_seed(0)
    net = UNet((1, 8, 8), channels=(8, 16), time_dim=32, num_classes=2)
    model = guidance.ConditionalDiffusionModel(net, timesteps=100, sample_steps=10, sample_eta=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    x0 = torch.where(labels.view(-1, 1, 1, 1) == 0, 0.8, -0.8) * torch.ones(64, 1, 8, 8)
    for _ in range(120):
        loss = guidance.conditional_diffusion_loss(model, x0, labels, model.schedule, null_label=2, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    t = torch.full((64,), 99)
    x_t = diffusion.q_sample(x0, t, torch.randn(64, 1, 8, 8, generator=g), model.schedule)
    with torch.no_grad():
        guess = {
            asked: diffusion.predict_x0(x_t, t, model(x_t, t, torch.full((64,), asked)), model.schedule)
            for asked in (0, 1)
        }
    # For the same noisy picture, asking for class 0 (+0.8) aims brighter than asking for class 1 (-0.8).
    assert ((guess[0] - guess[1]).mean(dim=(1, 2, 3)) > 0).float().mean() > 0.9


def test_conditional_loss_checks_the_labels():
    model = _model()
    with pytest.raises(ValueError, match="one class per image"):
        guidance.conditional_diffusion_loss(model, torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long),
                                            model.schedule, 10)  # fmt: skip


def test_conditional_model_is_still_a_diffusion_model():
    model = _model()
    assert isinstance(model, diffusion.DiffusionModel)
    assert model.null_label == 10 and model.image_shape == (1, 8, 8)


def test_clip_keeps_a_latent_sampler_stable_at_the_cosine_schedules_last_step():
    """alpha_bar at the cosine schedule's last step is about 1e-9: without a clamp, the first guess of the
    clean data multiplies the network's error by 1 / sqrt(alpha_bar) and the samples blow up."""
    model = _model((4, 4, 4), (16,), clip=None)
    model.schedule = diffusion.make_schedule(1000, "cosine")
    wild = model.sample_classes([1, 2], w=2.0, generator=torch.Generator().manual_seed(0))
    model.clip = 3.0
    tame = model.sample_classes([1, 2], w=2.0, generator=torch.Generator().manual_seed(0))
    assert wild.abs().max() > 100
    assert tame.abs().max() <= 3.0 + 1e-5
