"""Text for notebook 09: a small corpus, characters <-> ids, baselines, and sampling.

The image notebooks learn P(X) for pictures; notebook 09 does the same for text, one character
at a time. This module holds what is not the model itself:

* the corpus: three of Shakespeare's Roman plays, shipped with the package (public domain, see
  ``course_utils/texts/README.md``), split into training and validation text (:func:`load_text`);
* :class:`Vocab`: characters <-> integer ids;
* batches of windows for training (:func:`text_loader`);
* two baselines with no neural network (unigram and bigram counts) and the score that compares
  every model: bits per character on the validation text (:func:`bits_per_char`);
* the sampling knobs of every text generator, written out: temperature, top-k, top-p
  (:func:`next_char_probs`, :func:`sample_next`) and the loop that writes text (:func:`generate`),
  with the same parameter names as Hugging Face's ``pipeline('text-generation')``;
* :func:`pretrained_available`: can this machine run that pipeline (is ``transformers``
  installed, is the model hub reachable)?
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from course_utils.data import make_loader
from course_utils.loop import evaluating

TEXTS: dict[str, tuple[str, ...]] = {
    "roman-plays": ("julius_caesar.txt", "antony_and_cleopatra.txt", "coriolanus.txt"),
    "julius-caesar": ("julius_caesar.txt",),
}
"""The corpora :func:`load_text` knows: name -> text files in ``course_utils/texts``."""

SOURCE = "William Shakespeare (public domain), Project Gutenberg texts via the Open Shakespeare package"


# ---------------------------------------------------------------------------------------------
# The corpus and its vocabulary
# ---------------------------------------------------------------------------------------------


def read_text_file(filename: str) -> str:
    """The text of one file shipped in ``course_utils/texts`` (UTF-8)."""
    path = resources.files("course_utils") / "texts" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{filename} is not among the course's texts; known corpora: {sorted(TEXTS)}")
    return path.read_text(encoding="utf-8")


@dataclass
class Vocab:
    """The characters a model knows, each with an integer id (its position in ``chars``)."""

    chars: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("chars must be distinct single characters")
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """Every distinct character of ``text``, sorted (so the ids do not depend on the order of the text)."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``text`` as an int64 tensor of ids; names the characters the vocabulary lacks."""
        unknown = sorted(set(text) - self._index.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown!r}; use only characters of the training text")
        codes = torch.from_numpy(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64))
        table = torch.full((max(ord(c) for c in self.chars) + 1,), -1, dtype=torch.int64)  # code point -> id
        table[[ord(c) for c in self.chars]] = torch.arange(len(self.chars))
        return table[codes]  # a vectorised lookup: a whole play is encoded in milliseconds

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The characters of a sequence of ids."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.chars[int(i)] for i in values)


@dataclass
class TextData:
    """A corpus split into training and validation text, with its vocabulary and the ids of both."""

    name: str
    source: str
    train_text: str
    val_text: str
    vocab: Vocab

    def __post_init__(self) -> None:
        self.train_ids = self.vocab.encode(self.train_text)
        self.val_ids = self.vocab.encode(self.val_text)

    def __repr__(self) -> str:
        return (
            f"TextData({self.name}: {len(self.train_text):,} training + {len(self.val_text):,} validation characters, "
            f"{len(self.vocab)} distinct, from {self.source})"
        )


def load_text(
    name: str = "roman-plays", *, val_fraction: float = 0.1, limit: int | None = None, verbose: bool = True
) -> TextData:
    """Load a corpus shipped with the course: training text and held-out validation text.

    The last ``val_fraction`` of each play is held out, so validation text is Shakespeare the
    model has never read (not a shuffled copy of lines it has seen). ``limit`` keeps only the
    first ``limit`` characters of each play (the fast profile uses it). The vocabulary covers both
    parts, so a rare character that only occurs in validation text still has an id.
    """
    if name not in TEXTS:
        raise ValueError(f"unknown text {name!r}; choose one of {sorted(TEXTS)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if limit is not None and limit < 100:
        raise ValueError(f"limit must be None or at least 100 characters, got {limit}")
    train_parts, val_parts = [], []
    for filename in TEXTS[name]:
        play = read_text_file(filename)[:limit]
        cut = int(len(play) * (1.0 - val_fraction))
        train_parts.append(play[:cut])
        val_parts.append(play[cut:])
    train_text, val_text = "\n".join(train_parts), "\n".join(val_parts)
    data = TextData(name, SOURCE, train_text, val_text, Vocab.from_text(train_text + val_text))
    if verbose:
        print(f"Text: {name} ({len(TEXTS[name])} play(s)) by {data.source}.")
        print(
            f"      {len(train_text):,} training and {len(val_text):,} validation characters, "
            f"{len(data.vocab)} distinct characters."
        )
    return data


def make_windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Cut a long id sequence into ``N x (seq_len + 1)`` windows, each starting where the last ended.

    A window's first ``seq_len`` ids are the input and its last ``seq_len`` ids the targets (the
    same text shifted by one), so every character of the text is a target exactly once per epoch.
    """
    if ids.ndim != 1:
        raise ValueError(f"ids must be one long sequence (1-D), got shape {tuple(ids.shape)}")
    if seq_len < 1 or len(ids) < seq_len + 1:
        raise ValueError(f"need seq_len >= 1 and at least seq_len + 1 ids, got seq_len={seq_len}, {len(ids)} ids")
    n = (len(ids) - 1) // seq_len
    starts = torch.arange(n) * seq_len
    return ids[starts[:, None] + torch.arange(seq_len + 1)]


def text_loader(ids: torch.Tensor, seq_len: int, batch_size: int, *, shuffle: bool = True, seed: int = 0) -> DataLoader:
    """Batches of windows (see :func:`make_windows`); each batch is a one-element tuple ``(windows,)``."""
    return make_loader(make_windows(ids, seq_len), batch_size=batch_size, shuffle=shuffle, seed=seed)


# ---------------------------------------------------------------------------------------------
# Scores and baselines: bits per character
# ---------------------------------------------------------------------------------------------


def unigram_probs(ids: torch.Tensor, vocab_size: int, alpha: float = 0.1) -> torch.Tensor:
    """P(character), ignoring context: counts + ``alpha`` (so no character gets probability 0), normalised."""
    counts = torch.bincount(ids.cpu(), minlength=vocab_size).double() + alpha  # float64 on the CPU (MPS has none)
    return counts / counts.sum()


def bigram_probs(ids: torch.Tensor, vocab_size: int, alpha: float = 0.1) -> torch.Tensor:
    """P(next | previous) as a ``vocab_size x vocab_size`` table (row = previous character), smoothed by ``alpha``."""
    ids = ids.cpu()  # counted in float64, on the CPU (MPS has no float64)
    pairs = ids[:-1] * vocab_size + ids[1:]
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size).double().view(vocab_size, vocab_size) + alpha
    return counts / counts.sum(dim=1, keepdim=True)


def baseline_bits_per_char(probs: torch.Tensor, ids: torch.Tensor) -> float:
    """Bits per character of ``ids[1:]`` under a unigram (1-D ``probs``) or bigram (2-D) table.

    The first character is skipped, as for the neural model, which only predicts what follows.
    """
    probs, ids = probs.cpu(), ids.cpu()
    if probs.ndim == 1:
        p = probs[ids[1:]]
    elif probs.ndim == 2:
        p = probs[ids[:-1], ids[1:]]
    else:
        raise ValueError(f"probs must be a unigram (1-D) or bigram (2-D) table, got shape {tuple(probs.shape)}")
    return float(-torch.log2(p).mean())


@torch.no_grad()
def bits_per_char(model: nn.Module, ids: torch.Tensor, chunk: int = 512) -> float:
    """The model's average -log2 P(next character | all before it) over ``ids[1:]``.

    The text is read in chunks with the GRU state carried across them, so every character is
    predicted from everything before it. Lower is better; log2(vocabulary size) is the score of
    uniform guessing. (Cross-entropy in nats / ln 2 = bits.)
    """
    if len(ids) < 2:
        raise ValueError("need at least two characters to score")
    device = next(model.parameters()).device
    total_nats, state = 0.0, None
    inputs, targets = ids[:-1].to(device), ids[1:].to(device)
    with evaluating(model):
        for start in range(0, len(inputs), chunk):
            logits, state = model(inputs[None, start : start + chunk], state)
            total_nats += float(F.cross_entropy(logits[0], targets[start : start + chunk], reduction="sum"))
    return total_nats / len(targets) / math.log(2)


# ---------------------------------------------------------------------------------------------
# Sampling: temperature, top-k, top-p, and the generation loop
# ---------------------------------------------------------------------------------------------


def temperature_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / temperature) over the last dimension.

    Below 1 the distribution gets sharper (the likely characters get likelier), above 1 flatter;
    1 leaves the model's own probabilities.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use sample_next(..., temperature=0) for greedy), got {temperature}")
    return torch.softmax(logits / temperature, dim=-1)


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row; set the others to -inf (probability exactly 0)."""
    if not 1 <= k:
        raise ValueError(f"top_k must be a positive integer, got {k}")
    k = min(k, logits.shape[-1])
    kept = torch.topk(logits, k, dim=-1).indices
    out = torch.full_like(logits, float("-inf"))
    return out.scatter(-1, kept, logits.gather(-1, kept))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely characters whose probabilities add up to ``p``.

    The most likely character is always kept; the rest are set to -inf.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # probability of the characters ranked above
    sorted_logits = sorted_logits.masked_fill(mass_before >= p, float("-inf"))
    return torch.empty_like(logits).scatter(-1, order, sorted_logits)


def next_char_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """The distribution a sampler draws from: temperature first, then top-k, then top-p (the pipeline's order)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 here, got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    return torch.softmax(logits, dim=-1)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one id per row of ``B x vocab`` logits; ``temperature=0`` means greedy (always the most likely)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be B x vocab_size, got shape {tuple(logits.shape)}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = next_char_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs.float(), 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(
    model: nn.Module,
    vocab: Vocab,
    prompt: str = "",
    *,
    max_new_tokens: int | None = None,
    max_length: int | None = None,
    num_return_sequences: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> list[str]:
    """Write text after ``prompt``, one character at a time: the chain rule run forwards.

    The parameters mirror ``pipeline('text-generation')``: ``max_new_tokens`` counts only new
    characters; ``max_length`` counts the prompt too (``max_new_tokens`` wins when both are given;
    200 new characters when neither is); ``num_return_sequences`` independent continuations;
    ``temperature`` (0 = greedy), ``top_k`` and ``top_p`` shape each draw. Returns the prompt plus
    its continuation for each sequence. ``model(ids, state)`` must return ``(logits, state)``,
    like :class:`course_utils.models.CharGRU`.
    """
    if num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be >= 1, got {num_return_sequences}")
    if max_new_tokens is None:
        max_new_tokens = 200 if max_length is None else max_length - len(prompt)
    if max_new_tokens < 0:
        raise ValueError(f"max_length={max_length} is shorter than the prompt ({len(prompt)} characters)")
    # With no prompt, start as a fresh line of the text starts: after a newline (not returned).
    context = prompt or "\n"
    if "\n" not in vocab.chars and not prompt:
        raise ValueError("give a prompt: this vocabulary has no newline to start from")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids = vocab.encode(context).to(device).repeat(num_return_sequences, 1)  # B x len(context)
    new = []
    with evaluating(model):
        logits, state = model(ids)  # read the whole prompt once; the state remembers it
        for _ in range(max_new_tokens):
            next_ids = sample_next(
                logits[:, -1].cpu(), temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )
            new.append(next_ids)
            logits, state = model(next_ids[:, None].to(device), state)  # feed only the new character
    if not new:
        return [prompt] * num_return_sequences
    columns = torch.stack(new, dim=1)
    return [prompt + vocab.decode(row) for row in columns]


# ---------------------------------------------------------------------------------------------
# The pretrained route: Hugging Face transformers, where it can run
# ---------------------------------------------------------------------------------------------

_AVAILABILITY: dict[tuple[str, str], tuple[bool, str]] = {}


def hub_endpoint() -> str:
    """The model hub's address (``HF_ENDPOINT``, as transformers reads it; default huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def pretrained_status(model: str = "gpt2", timeout: float = 3.0, refresh: bool = False) -> tuple[bool, str]:
    """Whether ``pipeline('text-generation', model=model)`` can run here, and why (or why not).

    Checks, without downloading any weights: that ``transformers`` is installed, then that the hub
    answers a short request about the model within ``timeout`` seconds, or else that the model is
    already in the local Hugging Face cache. The answer is remembered for the session
    (``refresh=True`` asks again).
    """
    key = (model, hub_endpoint())
    if key in _AVAILABILITY and not refresh:
        return _AVAILABILITY[key]
    if importlib.util.find_spec("transformers") is None:
        answer = (
            False,
            "the `transformers` package is not installed (it is optional: `pip install transformers`, "
            "or `pip install -e '.[text]'` in the course folder), so the pretrained cells are skipped",
        )
    elif _hub_answers(model, timeout):
        answer = (True, f"transformers is installed and {key[1]} answers: the pretrained cells will download {model}")
    elif _in_local_cache(model):
        answer = (True, f"the hub is out of reach, but {model} is in the local Hugging Face cache")
    else:
        answer = (
            False,
            f"transformers is installed, but {key[1]} did not answer within {timeout:g} s and {model} is not in the "
            "local cache (no network?), so the pretrained cells are skipped",
        )
    _AVAILABILITY[key] = answer
    return answer


def pretrained_available(model: str = "gpt2", timeout: float = 3.0, verbose: bool = True) -> bool:
    """True when the pretrained ``transformers`` pipeline can run here (see :func:`pretrained_status`).

    With ``verbose`` it prints one line saying which way it went and why.
    """
    ok, reason = pretrained_status(model, timeout)
    if verbose:
        print(("Pretrained model available: " if ok else "Pretrained model NOT available: ") + reason + ".")
    return ok


def _hub_answers(model: str, timeout: float) -> bool:
    # A HEAD request for the model's description page: a few hundred bytes, no weights. It runs in a
    # helper thread so that a slow DNS lookup (which urlopen's timeout does not cover) cannot stall a notebook.
    request = urllib.request.Request(f"{hub_endpoint()}/api/models/{model}", method="HEAD")
    answer: list[bool] = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer.append(200 <= response.status < 400)
        except (urllib.error.URLError, OSError, ValueError):
            answer.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


def _in_local_cache(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - a broken cache only means "not available"
        return False
