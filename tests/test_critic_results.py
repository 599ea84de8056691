"""The course's critic (notebook 00's classifier that grades every artist): training, caching, judging."""

import dataclasses
import math
import os

import pytest
import torch

from course_utils import critic
from course_utils.data import load_dataset
from course_utils.models import Classifier

_ENV_AT_IMPORT = {name: os.environ.get(name) for name in ("COURSE_PROFILE", "COURSE_CHECKPOINT_DIR")}


@pytest.fixture(scope="module")
def digits_critic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("critic")
    # A module-scoped fixture cannot use the per-test monkeypatch: its own one, undone as soon as the critic is made.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_PROFILE", "fast")
        patch.setenv("COURSE_CHECKPOINT_DIR", str(folder))
        data = load_dataset("digits", verbose=False)
        model = critic.get_critic(data, verbose=False)
    return model, data, folder


def test_the_critic_fixture_leaves_the_environment_as_it_found_it(digits_critic, monkeypatch):
    monkeypatch.undo()  # the environment outside this test: tests/conftest.py's per-test folders undone
    assert {name: os.environ.get(name) for name in _ENV_AT_IMPORT} == _ENV_AT_IMPORT


def test_classifier_shapes_at_both_sizes():
    for shape in [(1, 28, 28), (1, 8, 8)]:
        model = Classifier(shape)
        x = torch.rand(3, *shape)
        assert model(x).shape == (3, 10) and model.features(x).shape == (3, 128)
    with pytest.raises(ValueError, match="divisible by 4"):
        Classifier((1, 10, 10))
    with pytest.raises(ValueError, match="expected images"):
        Classifier((1, 8, 8))(torch.rand(2, 1, 28, 28))


def test_critic_learns_digits_and_is_cached(digits_critic, capsys, monkeypatch):
    model, data, folder = digits_critic
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(folder))
    test = load_dataset("digits", "test", verbose=False)
    assert critic.accuracy(model, test) > 0.8
    again = critic.get_critic(data, verbose=True)
    assert "loaded" in capsys.readouterr().out
    assert torch.equal(again.head.weight, model.head.weight)
    assert not any(p.requires_grad for p in again.parameters())


def test_judge_scores_real_digits_high_and_a_collapsed_set_low(digits_critic):
    model, _, _ = digits_critic
    test = load_dataset("digits", "test", verbose=False)
    real = critic.judge(model, test.images)
    assert real["class_entropy_bits"] > 3.1 and real["mean_confidence"] > 0.6
    assert sum(real["class_histogram"]) == pytest.approx(1.0, abs=1e-3)
    collapsed = critic.judge(model, test.images[test.labels == 3])
    assert collapsed["class_entropy_bits"] < 1.5
    assert real["max_entropy_bits"] == pytest.approx(math.log2(10))


def test_judge_refuses_wrong_ranges_and_sizes(digits_critic):
    model, _, _ = digits_critic
    with pytest.raises(ValueError, match="to_unit"):
        critic.judge(model, torch.full((2, 1, 8, 8), -1.0))
    with pytest.raises(ValueError, match="trained on images of shape"):
        critic.judge(model, torch.rand(2, 1, 28, 28))


def test_an_outdated_critic_checkpoint_is_replaced(tmp_path, monkeypatch, capsys):
    from torch import nn

    from course_utils.checkpoints import checkpoint_path, save_checkpoint

    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    data = load_dataset("digits", verbose=False).subset(300)
    old = Classifier(data.image_shape)
    old.head = nn.Linear(128, 3)  # an older architecture
    save_checkpoint(checkpoint_path("critic", data), {"model": old}, test_accuracy=0.5)
    quick = critic.CriticConfig(epochs=1, train_size=300)  # one short epoch is enough here
    monkeypatch.setattr(critic, "critic_preset", lambda data: quick)
    model = critic.get_critic(data)
    assert model.head.out_features == 10
    assert "does not fit: moved it to" in capsys.readouterr().out
    assert critic.get_critic(data) is not model  # the new one is saved and loaded next time
    assert "Critic loaded" in capsys.readouterr().out


def test_notebook_00s_critic_is_the_one_later_notebooks_load(monkeypatch, tmp_path, capsys):
    from course_utils.checkpoints import checkpoint_path

    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    data = load_dataset("digits", verbose=False)
    quick = dataclasses.replace(critic.critic_preset(data), epochs=1, train_size=200)
    monkeypatch.setattr(critic, "critic_preset", lambda data: quick)
    trained, _ = critic.train_critic(data, critic.critic_preset(data), checkpoint=checkpoint_path("critic", data))
    loaded = critic.get_critic(data)
    assert "Critic loaded" in capsys.readouterr().out
    assert torch.equal(trained.head.weight, loaded.head.weight)


def test_class_agreement_counts_pictures_read_as_the_class_asked_for(digits_critic):
    model, data, _ = digits_critic
    test = load_dataset("digits", "test", verbose=False)
    assert critic.class_agreement(model, test.images, test.labels) > 0.8
    assert critic.class_agreement(model, test.images, (test.labels + 1) % 10) < 0.1
    with pytest.raises(ValueError, match="one class per image"):
        critic.class_agreement(model, test.images[:3], [1, 2])
