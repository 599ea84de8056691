import dataclasses
import json
import math

import pytest
import torch

from course_utils import critic, results
from course_utils.data import load_dataset
from course_utils.models import Classifier


@pytest.fixture(scope="module")
def digits_critic(tmp_path_factory):
    import os

    folder = tmp_path_factory.mktemp("critic")
    previous = os.environ.get("COURSE_CHECKPOINT_DIR")
    os.environ["COURSE_PROFILE"] = "fast"
    os.environ["COURSE_CHECKPOINT_DIR"] = str(folder)
    data = load_dataset("digits", verbose=False)
    model = critic.get_critic(data, verbose=False)
    if previous is not None:
        os.environ["COURSE_CHECKPOINT_DIR"] = previous
    return model, data, folder


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


def test_results_are_recorded_as_json(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    path = results.record("vae", {"fid": torch.tensor(3.5), "n": 2, "bad": float("nan"), "data": "digits"})
    saved = json.loads(path.read_text())
    assert saved == {"kind": "vae", "profile": "fast", "fid": 3.5, "n": 2, "bad": None, "data": "digits"}
    assert results.load_all() == {"vae": saved}
    with pytest.raises(TypeError, match="number, string or list"):
        results.record("vae", {"model": object()})


def test_a_record_counts_only_for_its_data_set_and_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    results.record("vae", {"dataset": "digits 8x8", "fid": 3.5})
    assert results.recorded("vae", "digits 8x8")["fid"] == 3.5
    assert results.recorded("vae", "mnist 28x28") == {}  # other data
    assert results.recorded("gan", "digits 8x8") == {}  # nothing recorded
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert results.recorded("vae", "digits 8x8") == {}  # another profile


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
