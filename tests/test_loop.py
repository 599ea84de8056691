import dataclasses
import math
import os
import signal

import pytest
import torch
from torch import nn

from course_utils import data, loop
from course_utils.history import History
from course_utils.loop import NonFiniteLossError, TrainingConfig, evaluating, fit


def regression_problem(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch):
        inputs, targets = batch
        loss = ((model(inputs) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    return model, optimizer, step, data.make_loader(x, y, batch_size=16, seed=seed)


def test_fit_learns_and_records_steps_and_epoch_means():
    _, _, step, loader = regression_problem()
    history = fit(step, loader, epochs=5)
    assert len(history.steps["loss"]) == 20 and len(history.epochs["loss"]) == 5
    assert history.epochs["loss"][0] == pytest.approx(sum(history.steps["loss"][:4]) / 4)
    assert history.epochs["loss"][-1] < 0.1 * history.epochs["loss"][0]
    assert history.n_epochs == 5 and history.seconds > 0


def test_fit_stops_on_nan_with_advice():
    calls = []

    def step(batch):
        calls.append(1)
        return {"loss": float("nan") if len(calls) == 3 else 1.0}

    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1, step 3.*smaller learning rate"):
        fit(step, [0] * 5, epochs=1)


def test_fit_checkpoints_every_epoch_and_resumes(tmp_path, capsys):
    model, optimizer, step, loader = regression_problem()
    path = tmp_path / "run.pt"
    fit(step, loader, epochs=2, checkpoint=path, modules={"model": model, "optimizer": optimizer})
    weights_after_two = model.weight.detach().clone()

    # A new process would rebuild the objects: resuming continues from epoch 2 with the saved weights.
    model2, optimizer2, step2, loader2 = regression_problem()
    with torch.no_grad():
        model2.weight.zero_()  # other starting weights: the checkpoint's must replace them
    history = fit(step2, loader2, epochs=3, checkpoint=path, modules={"model": model2, "optimizer": optimizer2})
    assert "Resuming" in capsys.readouterr().out
    assert len(history.epochs["loss"]) == 3 and len(history.steps["loss"]) == 12
    assert not torch.equal(model2.weight, weights_after_two)  # it trained one more epoch from there
    # ... and ends where three epochs in one go end: the saved weights, optimizer and shuffling carried over.
    straight, straight_optimizer, straight_step, straight_loader = regression_problem()
    fit(straight_step, straight_loader, epochs=3, modules={"model": straight, "optimizer": straight_optimizer})
    torch.testing.assert_close(model2.weight, straight.weight, rtol=0, atol=0)

    history = fit(step2, loader2, epochs=3, checkpoint=path, modules={"model": model2, "optimizer": optimizer2})
    assert "nothing to do" in capsys.readouterr().out and history.n_epochs == 3


def test_budget_limits_end_training_early():
    _, _, step, loader = regression_problem()
    assert len(fit(step, loader, epochs=10, max_steps=6).steps["loss"]) == 6
    assert len(fit(step, loader, epochs=1000, max_seconds=0.0).steps["loss"]) == 1


def test_interrupt_keeps_what_was_learned(capsys):
    def step(batch):
        if batch == 2:
            raise KeyboardInterrupt
        return {"loss": 1.0}

    history = fit(step, [0, 1, 2, 3], epochs=1)
    assert history.steps["loss"] == [1.0, 1.0] and "Interrupted" in capsys.readouterr().out


def test_epoch_hook_sees_the_history_and_bad_arguments_are_refused():
    seen = []
    fit(lambda b: {"loss": 2.0}, [0, 1], epochs=2, on_epoch_end=lambda e, h: seen.append((e, h.epochs["loss"][-1])))
    assert seen == [(0, 2.0), (1, 2.0)]
    with pytest.raises(ValueError, match="modules"):
        fit(lambda b: {}, [0], epochs=1, checkpoint="x.pt")
    with pytest.raises(TypeError, match="dict"):
        fit(lambda b: 1.0, [0], epochs=1)


def test_history_round_trips_through_a_dict():
    history = History()
    history.log_step({"a": torch.tensor(1.0)})
    history.log_step({"a": 3.0})
    history.end_epoch()
    again = History.from_dict(history.to_dict())
    assert again.epochs == {"a": [2.0]} and again.last("a") == 3.0
    with pytest.raises(KeyError, match="logged keys"):
        again.last("b")
    assert not math.isnan(again.seconds)


def test_a_checkpoint_of_another_architecture_is_set_aside_not_fatal(tmp_path, capsys):
    path = tmp_path / "run.pt"
    old_model = nn.Linear(5, 1)
    fit(lambda b: {"loss": 1.0}, [0], epochs=1, checkpoint=path, modules={"model": old_model})
    model, optimizer, step, loader = regression_problem()
    history = fit(step, loader, epochs=1, checkpoint=path, modules={"model": model, "optimizer": optimizer})
    out = capsys.readouterr().out
    (stale,) = tmp_path.glob("run.trained-*.stale.pt")
    assert f"does not fit: moved it to {stale.name}" in out
    assert history.n_epochs == 1 and path.exists()


def test_two_mismatches_in_a_row_keep_both_old_models(tmp_path, capsys):
    path = tmp_path / "run.pt"
    for width in (2, 3, 4):  # three architectures, saved at the same second: the names must still differ
        fit(lambda b: {"loss": 1.0}, [0], epochs=1, checkpoint=path, modules={"model": nn.Linear(width, 1)})
    stale = sorted(tmp_path.glob("run.trained-*.stale.pt"))
    kept = [torch.load(p, weights_only=True)["modules"]["model"]["state"]["weight"].shape[1] for p in stale]
    assert sorted(kept) == [2, 3] and len(capsys.readouterr().out.split("does not fit")) == 3


@pytest.fixture
def usual_ctrl_c():
    """Python's own Ctrl-C handler, as in a notebook (a pytest-xdist worker starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_after_the_step_saves_and_resumes_exactly(tmp_path, capsys, usual_ctrl_c):
    def run(interrupt_at=None):
        model, optimizer, step, loader = regression_problem()
        calls = []

        def step_that_gets_interrupted(batch):
            calls.append(1)
            if len(calls) == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C or Jupyter's interrupt button sends
            return step(batch)

        modules = {"model": model, "optimizer": optimizer}
        history = fit(step_that_gets_interrupted, loader, epochs=3, checkpoint=tmp_path / "run.pt", modules=modules)
        return model, history

    _, history = run(interrupt_at=6)  # step 6 is batch 2 of epoch 2: it finishes, then the run stops
    assert "Stopped by Ctrl-C during epoch 2, after its batch 2" in capsys.readouterr().out
    assert len(history.steps["loss"]) == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual Ctrl-C is back
    resumed, resumed_history = run()
    assert "epoch 2 of 3 goes on at batch 3" in capsys.readouterr().out

    reference, _, step, loader = regression_problem()
    reference_history = fit(step, loader, epochs=3)
    assert resumed_history.steps == reference_history.steps
    assert torch.equal(resumed.weight, reference.weight) and torch.equal(resumed.bias, reference.bias)


def test_budgets_count_the_whole_run_and_a_spent_budget_trains_no_more(tmp_path, capsys):
    model, optimizer, step, loader = regression_problem()
    modules = {"model": model, "optimizer": optimizer}
    path = tmp_path / "run.pt"
    fit(step, loader, epochs=5, max_steps=6, checkpoint=path, modules=modules)
    history = fit(step, loader, epochs=5, max_steps=6, checkpoint=path, modules=modules)  # a rerun of the notebook
    assert "max_steps=6 is spent" in capsys.readouterr().out and len(history.steps["loss"]) == 6
    history = fit(step, loader, epochs=5, max_steps=10, checkpoint=path, modules=modules)  # a larger budget goes on
    assert len(history.steps["loss"]) == 10 and history.n_epochs == 2
    fit(step, loader, epochs=5, max_seconds=0.0, checkpoint=path, modules=modules)
    assert "max_seconds=0 is spent" in capsys.readouterr().out


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Settings(TrainingConfig):
    width: int = 4
    lr: float = 0.1


def test_settings_travel_with_the_checkpoint_and_budgets_never_mismatch(tmp_path, capsys):
    model, optimizer, step, loader = regression_problem()
    modules = {"model": model, "optimizer": optimizer}
    path = tmp_path / "run.pt"
    fit(step, loader, settings=_Settings(epochs=1), checkpoint=path, modules=modules)
    # Training for longer (epochs, max_steps, max_seconds) continues the same model.
    history = fit(step, loader, settings=_Settings(epochs=2, max_seconds=60.0), checkpoint=path, modules=modules)
    assert "Resuming" in capsys.readouterr().out and history.n_epochs == 2
    # Another width is another model: the file is set aside, loudly, naming the setting and both values.
    history = fit(step, loader, settings=_Settings(epochs=1, width=8, lr=0.1), checkpoint=path, modules=modules)
    out = capsys.readouterr().out
    assert "width=4 in the file, 8 now" in out and "lr" not in out.split("now")[1].split(".")[0]
    assert "moved it to run.trained-" in out and history.n_epochs == 1
    with pytest.raises(ValueError, match="not both"):
        fit(step, loader, 3, settings=_Settings())
    with pytest.raises(ValueError, match="max_steps"):
        _Settings(max_steps=0)


def test_evaluating_switches_to_eval_without_gradients_and_restores_the_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with evaluating(model):
        assert not model.training and not torch.is_grad_enabled()
    assert model.training
    model.eval()
    with evaluating(model):
        pass
    assert not model.training


def test_a_budget_in_images_trains_as_long_whatever_the_size_of_the_data():
    # 1,200 pictures: 3 passes over 400 of them, 1 pass over 1,000 (rounded), at least 1 pass over 5,000.
    settings = TrainingConfig(images=1_200, batch_size=100)
    for size, passes in ((400, 3), (1_000, 1), (5_000, 1)):
        assert settings.epochs_for(size) == passes
        loader = data.make_loader(torch.zeros(size, 1), batch_size=100)
        history = fit(lambda batch: {"loss": float(len(batch[0]))}, loader, settings=settings)
        assert history.n_epochs == passes and len(history.steps["loss"]) == passes * len(loader)
    assert TrainingConfig(epochs=4).epochs_for(10) == 4  # without images, epochs rule
    with pytest.raises(ValueError, match="images must be positive"):
        TrainingConfig(images=0)
    with pytest.raises(ValueError, match="known size"):
        fit(lambda batch: {"loss": 0.0}, [0, 1], settings=settings)


def test_fit_releases_freed_memory_when_it_ends(monkeypatch):
    calls = []
    monkeypatch.setattr(loop, "release_freed_memory", lambda: calls.append(True) or True)
    fit(lambda batch: {"loss": 0.0}, [torch.zeros(1)], epochs=1, desc="test")
    assert calls == [True]
