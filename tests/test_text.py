"""Tests for course_utils.text: corpus, vocabulary, windows, baselines, sampling, availability check."""

from __future__ import annotations

import http.server
import importlib.util
import math
import socket
import threading
from collections import Counter

import pytest
import torch
from torch import nn

from course_utils import text
from course_utils.models import CharGRU

# ----------------------------------------------------------------------------------------- corpus


def test_shipped_texts_are_packaged_with_their_source_stated():
    for filenames in text.TEXTS.values():
        for filename in filenames:
            play = text.read_text_file(filename)
            assert len(play) > 50_000
            assert "Shakespeare" in play[:200]
    readme = (text.resources.files("course_utils") / "texts" / "README.md").read_text(encoding="utf-8")
    assert "public domain" in readme.lower() and "Gutenberg" in readme


def test_load_text_holds_out_the_end_of_every_play(capsys):
    data = text.load_text("roman-plays", val_fraction=0.1)
    assert "Text: roman-plays" in capsys.readouterr().out
    plays = [text.read_text_file(f) for f in text.TEXTS["roman-plays"]]
    for play in plays:
        cut = int(len(play) * 0.9)
        assert play[:cut] in data.train_text and play[cut:] in data.val_text
        assert play[cut:] not in data.train_text
    assert len(data.train_text) + len(data.val_text) == sum(len(p) for p in plays) + 2 * (len(plays) - 1)
    assert data.vocab.decode(data.train_ids) == data.train_text
    assert data.vocab.decode(data.val_ids) == data.val_text


def test_load_text_limit_and_errors():
    data = text.load_text("julius-caesar", limit=1000, verbose=False)
    assert len(data.train_text) + len(data.val_text) == 1000
    with pytest.raises(ValueError, match="unknown text"):
        text.load_text("hamlet", verbose=False)
    with pytest.raises(ValueError, match="val_fraction"):
        text.load_text(val_fraction=1.5, verbose=False)


def test_vocab_round_trip_and_unknown_characters():
    vocab = text.Vocab.from_text("hello world")
    assert vocab.chars == sorted(set("hello world"))
    ids = vocab.encode("world")
    assert ids.dtype == torch.int64 and vocab.decode(ids) == "world"
    assert vocab.decode([0, 1]) == vocab.chars[0] + vocab.chars[1]
    with pytest.raises(ValueError, match="'z'"):
        vocab.encode("zoo")
    with pytest.raises(ValueError, match="distinct"):
        text.Vocab(["a", "a"])


def test_windows_make_every_character_a_target_once():
    ids = torch.arange(23)
    windows = text.make_windows(ids, seq_len=5)
    assert windows.shape == (4, 6)
    assert torch.equal(windows[:, 1:].flatten(), torch.arange(1, 21))  # targets: every id after the first, once
    assert torch.equal(windows[1], torch.arange(5, 11))  # a window starts where the last one's inputs ended
    batches = list(text.text_loader(ids, 5, batch_size=3, shuffle=True, seed=1))
    assert [len(b[0]) for b in batches] == [3, 1]
    assert sorted(torch.cat([b[0] for b in batches])[:, 0].tolist()) == [0, 5, 10, 15]
    with pytest.raises(ValueError, match="seq_len"):
        text.make_windows(torch.arange(3), seq_len=5)


# ------------------------------------------------------------------------------- baselines, scores


def test_ngram_tables_match_plain_counting():
    s = "abracadabra"
    vocab = text.Vocab.from_text(s)
    ids = vocab.encode(s)
    uni = text.unigram_probs(ids, len(vocab), alpha=0.0)
    for ch, count in Counter(s).items():
        assert uni[vocab.chars.index(ch)].item() == pytest.approx(count / len(s))
    bi = text.bigram_probs(ids, len(vocab), alpha=0.5)
    pairs = Counter(zip(s, s[1:], strict=False))
    for a in vocab.chars:
        row_total = sum(c for (x, _), c in pairs.items() if x == a) + 0.5 * len(vocab)
        for b in vocab.chars:
            expected = (pairs.get((a, b), 0) + 0.5) / row_total
            assert bi[vocab.chars.index(a), vocab.chars.index(b)].item() == pytest.approx(expected)


def test_baseline_bits_per_char_is_the_mean_negative_log2():
    s = "abcab"
    vocab = text.Vocab.from_text(s)
    ids = vocab.encode(s)
    uni = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    expected = -(math.log2(0.25) + math.log2(0.25) + math.log2(0.5) + math.log2(0.25)) / 4  # b c a b
    assert text.baseline_bits_per_char(uni, ids) == pytest.approx(expected)
    uniform_bigram = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    assert text.baseline_bits_per_char(uniform_bigram, ids) == pytest.approx(math.log2(3))


class _Uniform(nn.Module):
    """Knows nothing: equal logits for every character."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, ids, state=None):
        return torch.zeros(*ids.shape, self.vocab_size) + 0 * self.dummy, state


def test_bits_per_char_of_a_know_nothing_model_is_log2_vocab():
    ids = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(0))
    assert text.bits_per_char(_Uniform(7), ids, chunk=64) == pytest.approx(math.log2(7))


def test_bits_per_char_carries_the_state_across_chunks():
    torch.manual_seed(0)
    model = CharGRU(5, embed_dim=4, hidden_size=8)
    ids = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])  # one pass over everything: the reference
        want = nn.functional.cross_entropy(logits[0], ids[1:]).item() / math.log(2)
    assert text.bits_per_char(model, ids, chunk=17) == pytest.approx(want, rel=1e-5)
    assert model.training  # the mode is restored


# --------------------------------------------------------------------------------------- sampling


def test_temperature_probs_reshapes_the_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    plain = torch.exp(logits) / torch.exp(logits).sum()
    assert torch.allclose(text.temperature_probs(logits, 1.0), plain)
    cold, hot = text.temperature_probs(logits, 0.5), text.temperature_probs(logits, 2.0)
    assert cold[0, 0] > plain[0, 0] > hot[0, 0]
    assert torch.allclose(cold, torch.exp(2 * logits) / torch.exp(2 * logits).sum())
    with pytest.raises(ValueError, match="temperature"):
        text.temperature_probs(logits, 0.0)


def test_filter_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 3.0, -2.0, 0.5, 2.0], [0.0, -1.0, 4.0, 1.0, -3.0]])
    out = text.filter_top_k(logits, 2)
    inf = float("-inf")
    assert torch.equal(out, torch.tensor([[inf, 3.0, inf, inf, 2.0], [inf, inf, 4.0, 1.0, inf]]))
    assert torch.equal(text.filter_top_k(logits, 99), logits)
    with pytest.raises(ValueError, match="top_k"):
        text.filter_top_k(logits, 0)


def test_filter_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]], dtype=torch.float64)
    logits = probs.log()
    kept = lambda p: torch.isfinite(text.filter_top_p(logits, p))[0].tolist()  # noqa: E731
    assert kept(0.4) == [False, True, False, False]  # the top character alone reaches 0.4
    assert kept(0.75) == [False, True, False, True]  # 0.5 + 0.3
    assert kept(0.85) == [False, True, True, True]  # 0.5 + 0.3 + 0.15
    assert kept(1.0) == [True, True, True, True]
    assert torch.equal(text.filter_top_p(logits, 0.75)[0, [1, 3]], logits[0, [1, 3]])  # kept logits unchanged
    with pytest.raises(ValueError, match="top_p"):
        text.filter_top_p(logits, 0.0)


def test_sample_next_follows_the_distribution_and_the_filters():
    probs = torch.tensor([0.1, 0.6, 0.3])
    logits = probs.log().repeat(20_000, 1)
    gen = torch.Generator().manual_seed(0)
    draws = text.sample_next(logits, generator=gen)
    freq = torch.bincount(draws, minlength=3).double() / len(draws)
    assert torch.allclose(freq, probs.double(), atol=0.015)
    assert torch.equal(text.sample_next(logits[:5], temperature=0), torch.ones(5, dtype=torch.int64))
    assert set(text.sample_next(logits[:500], top_k=2, generator=gen).tolist()) == {1, 2}
    assert set(text.sample_next(logits[:500], top_p=0.5, generator=gen).tolist()) == {1}
    again = text.sample_next(logits[:50], generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, text.sample_next(logits[:50], generator=torch.Generator().manual_seed(3)))


class _Successor(nn.Module):
    """Always predicts 'the next letter of the alphabet' (a hand-made model with an obvious answer)."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))
        self.calls: list[int] = []

    def forward(self, ids, state=None):
        self.calls.append(ids.shape[1])
        logits = 10.0 * nn.functional.one_hot((ids + 1) % self.vocab_size, self.vocab_size).float()
        steps = (state if state is not None else 0) + ids.shape[1]
        return logits + 0 * self.dummy, steps


def test_generate_runs_the_chain_rule_forwards():
    vocab = text.Vocab(list("\nabcdefgh"))
    model = _Successor(len(vocab))
    out = text.generate(model, vocab, "ab", max_new_tokens=4, temperature=0)
    assert out == ["abcdef"]
    assert model.calls == [2, 1, 1, 1, 1]  # the prompt once, then one new character at a time (the state remembers)
    assert text.generate(model, vocab, "ab", max_length=5, temperature=0) == ["abcde"]  # max_length counts the prompt
    assert text.generate(model, vocab, "ab", max_length=9, max_new_tokens=1, temperature=0) == ["abc"]
    assert text.generate(model, vocab, "", max_new_tokens=3, temperature=0) == ["abc"]  # starts after a newline
    assert text.generate(model, vocab, "ab", max_length=2) == ["ab"]
    with pytest.raises(ValueError, match="shorter than the prompt"):
        text.generate(model, vocab, "abc", max_length=2)


def test_generate_returns_independent_reproducible_sequences():
    torch.manual_seed(0)
    vocab = text.Vocab.from_text("the quick brown fox\n")
    model = CharGRU(len(vocab), embed_dim=4, hidden_size=8)
    model.train()
    outs = text.generate(model, vocab, "the ", max_new_tokens=30, num_return_sequences=3, seed=5)
    assert len(outs) == 3 and all(o.startswith("the ") and len(o) == 34 for o in outs)
    assert len(set(outs)) == 3  # an untrained model: three different draws
    assert outs == text.generate(model, vocab, "the ", max_new_tokens=30, num_return_sequences=3, seed=5)
    assert outs != text.generate(model, vocab, "the ", max_new_tokens=30, num_return_sequences=3, seed=6)
    assert model.training  # the mode is restored


# ------------------------------------------------------------------------ the pretrained route


@pytest.fixture
def fresh_availability(monkeypatch):
    monkeypatch.setattr(text, "_AVAILABILITY", {})
    monkeypatch.setattr(text, "_in_local_cache", lambda model: False)
    return monkeypatch


def _pretend_transformers_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        text.importlib.util, "find_spec", lambda name, *a: object() if name == "transformers" else real(name, *a)
    )


def test_pretrained_unavailable_without_transformers(fresh_availability, capsys):
    fresh_availability.setattr(text.importlib.util, "find_spec", lambda name, *a: None)
    assert text.pretrained_available() is False
    out = capsys.readouterr().out
    assert "NOT available" in out and "pip install transformers" in out


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - the name http.server expects
        self.send_response(200 if self.path == "/api/models/gpt2" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_pretrained_available_when_the_hub_answers(fresh_availability):
    _pretend_transformers_installed(fresh_availability)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fresh_availability.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert text.pretrained_status("gpt2", timeout=2)[0] is True
        assert text.pretrained_status("no-such-model", timeout=2)[0] is False
    finally:
        server.shutdown()
        server.server_close()


def test_pretrained_unavailable_when_the_hub_is_out_of_reach(fresh_availability):
    _pretend_transformers_installed(fresh_availability)
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fresh_availability.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    ok, reason = text.pretrained_status("gpt2", timeout=1)
    assert ok is False and "did not answer" in reason
    fresh_availability.setattr(text, "_in_local_cache", lambda model: True)
    assert text.pretrained_status("gpt2", timeout=1)[0] is False  # remembered for the session...
    assert text.pretrained_status("gpt2", timeout=1, refresh=True)[0] is True  # ...until asked again: cached model
