"""Tests for the character model: CharGRU, its training step, train_charmodel (checkpoint/resume)."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils import text
from course_utils.models import CharGRU
from course_utils.recipes import text as recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_data() -> text.TextData:
    # A text with an obvious rule (a repeating pattern), so a tiny model can learn it in seconds.
    pattern = "abcd efg\n"
    body = pattern * 120
    return text.TextData("tiny", "a test pattern", body, pattern * 12, text.Vocab.from_text(body))


def test_chargru_shapes_and_state():
    model = CharGRU(vocab_size=11, embed_dim=4, hidden_size=8, num_layers=2, dropout=0.1)
    logits, state = model(torch.randint(0, 11, (3, 7)))
    assert logits.shape == (3, 7, 11) and state.shape == (2, 3, 8)
    model.eval()
    ids = torch.randint(0, 11, (2, 9))
    whole, _ = model(ids)
    first, state = model(ids[:, :4])
    rest, _ = model(ids[:, 4:], state)  # feeding the state back continues exactly where it stopped
    assert torch.allclose(torch.cat([first, rest], dim=1), whole, atol=1e-6)
    with pytest.raises(ValueError, match="B x T"):
        model(torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="vocab_size"):
        CharGRU(1)


def test_charmodel_step_reports_nats_and_bits_and_learns():
    torch.manual_seed(0)
    data = _tiny_data()
    model = CharGRU(len(data.vocab), embed_dim=8, hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    windows = text.make_windows(data.train_ids, 16)[:16]
    first = recipe.charmodel_step(model, optimizer, windows)
    assert first["bits_per_char"] == pytest.approx(first["loss"] / math.log(2))
    assert first["bits_per_char"] == pytest.approx(math.log2(len(data.vocab)), abs=0.3)  # starts near guessing
    for _ in range(40):
        last = recipe.charmodel_step(model, optimizer, windows)
    assert last["bits_per_char"] < 0.5 * first["bits_per_char"]


def test_train_charmodel_learns_the_pattern_and_resumes(tmp_path, capsys):
    data = _tiny_data()
    path = tmp_path / "char.pt"
    settings = recipe.CharModelConfig(
        seq_len=16, batch_size=16, embed_dim=8, hidden_size=32, lr=1e-2, dropout=0.0, epochs=6
    )
    model, history = recipe.train_charmodel(data, settings, checkpoint=path)
    assert not model.training and path.exists()
    assert len(history.epochs["bits_per_char"]) == 6
    assert history.epochs["bits_per_char"][-1] < history.epochs["bits_per_char"][0]
    val = text.bits_per_char(model, data.val_ids)
    unigram = text.baseline_bits_per_char(text.unigram_probs(data.train_ids, len(data.vocab)), data.val_ids)
    assert val < 0.25 * unigram  # the pattern is deterministic: context makes it nearly free
    assert text.generate(model, data.vocab, "ab", max_new_tokens=18, temperature=0.0) == ["abcd efg\nabcd efg\nab"]
    again, history2 = recipe.train_charmodel(data, settings, checkpoint=path)  # loaded, not retrained
    assert "nothing to do" in capsys.readouterr().out
    assert history2.epochs == history.epochs
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_charmodel_checkpoint_path_names_text_width_and_profile():
    path = recipe.charmodel_checkpoint_path(_tiny_data(), recipe.CharModelConfig(hidden_size=64))
    assert path.name == "charmodel-tiny-h64-fast.pt"
