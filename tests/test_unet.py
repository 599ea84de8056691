"""Tests for the time-conditioned U-Net of notebook 05."""

import pytest
import torch

from course_utils.models.unet import SinusoidalTimeEmbedding, UNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape,channels", [((1, 8, 8), (8, 16, 16)), ((1, 28, 28), (8, 16, 16)), ((1, 8, 8), (8, 16))])
def test_unet_keeps_the_image_shape(shape, channels):
    model = UNet(shape, channels=channels, time_dim=16)
    x = torch.randn(3, *shape)
    out = model(x, torch.tensor([0, 5, 99]))
    assert out.shape == x.shape
    # The last layer starts at zero: an untrained model predicts no noise at all.
    assert torch.count_nonzero(out) == 0


def test_unet_uses_the_timestep_and_learns():
    torch.manual_seed(0)
    model = UNet((1, 8, 8), channels=(8, 16), time_dim=16)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x = torch.randn(16, 1, 8, 8)
    t = torch.randint(0, 100, (16,))
    target = x * (t.view(-1, 1, 1, 1) / 100)  # needs both the image and the timestep
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(x, t), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    out_a, out_b = model(x[:1], torch.tensor([1])), model(x[:1], torch.tensor([90]))
    assert not torch.allclose(out_a, out_b)


def test_time_embedding_is_sines_and_cosines():
    emb = SinusoidalTimeEmbedding(8)(torch.tensor([0, 3]))
    assert emb.shape == (2, 8)
    assert torch.allclose(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert torch.allclose(emb[1, :4] ** 2 + emb[1, 4:] ** 2, torch.ones(4))


def test_unet_explains_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet((1, 10, 10), channels=(8, 16, 16))
    model = UNet((1, 8, 8), channels=(8, 16))
    with pytest.raises(ValueError, match="expects images"):
        model(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]))


# --------------------------------------------------------------------------- class conditioning


def test_unconditional_unet_keeps_its_state_dict_keys_and_refuses_labels():
    model = UNet((1, 8, 8), channels=(8, 16), time_dim=16)
    assert model.null_label is None
    assert not any("label" in key for key in model.state_dict())
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([3, 4]))


@pytest.mark.parametrize("shape,channels", [((1, 8, 8), (8, 16)), ((1, 28, 28), (8, 16, 16)), ((4, 7, 7), (16,))])
def test_conditional_unet_shapes_and_null_token(shape, channels):
    model = UNet(shape, channels=channels, time_dim=16, num_classes=10)
    assert model.null_label == 10
    assert model.label_embedding.num_embeddings == 11  # ten classes and "no label"
    x, t = torch.randn(3, *shape), torch.tensor([0, 5, 99])
    assert model(x, t, torch.tensor([0, 9, 10])).shape == x.shape
    # No labels at all means "no label" for every image.
    torch.nn.init.normal_(model.out[-1].weight)  # wake the zero-initialised last layer so outputs differ
    assert torch.equal(model(x, t), model(x, t, torch.full((3,), 10)))


def test_conditional_unet_listens_to_the_label():
    torch.manual_seed(0)
    model = UNet((1, 8, 8), channels=(8, 16), time_dim=16, num_classes=3)
    torch.nn.init.normal_(model.out[-1].weight)
    x, t = torch.randn(1, 1, 8, 8).expand(4, -1, -1, -1), torch.full((4,), 7)
    out = model(x, t, torch.tensor([0, 1, 2, 3]))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(out[i], out[j])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([0, 11]), "0 .. 10"),
        (torch.tensor([-1, 2]), "0 .. 10"),
        (torch.tensor([0.0, 1.0]), "integer"),
        (torch.tensor([0, 1, 2]), "shape"),
    ],
)
def test_conditional_unet_explains_bad_labels(labels, message):
    model = UNet((1, 8, 8), channels=(8, 16), time_dim=16, num_classes=10)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), labels)


def test_conditional_unet_rejects_a_bad_number_of_classes():
    with pytest.raises(ValueError, match="num_classes"):
        UNet((1, 8, 8), channels=(8, 16), num_classes=0)
