"""A character-level language model: P(next character | every character before it).

The same idea as the image models, applied to text: a generative model of P(X), where X is a
string. The chain rule factorises it one character at a time,

    P(x_1, ..., x_n) = P(x_1) * P(x_2 | x_1) * ... * P(x_n | x_1, ..., x_{n-1}),

and one network gives every factor: it reads the characters so far and outputs a score (logit)
for each possible next character. Sampling a character, appending it and asking again writes
new text, which is exactly what a pretrained model such as GPT-2 does with sub-word tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class CharGRU(nn.Module):
    """Embedding -> GRU -> linear: one next-character logit vector per position.

    The GRU's hidden state is the model's memory of the text so far. ``forward`` returns it, so
    generation can feed one character at a time without re-reading the whole prompt.
    """

    def __init__(
        self, vocab_size: int, embed_dim: int = 32, hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0
    ):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)  # character id -> a small learned vector
        between = dropout if num_layers > 1 else 0.0  # nn.GRU's own dropout acts only between stacked layers
        self.gru = nn.GRU(embed_dim, hidden_size, num_layers, batch_first=True, dropout=between)
        self.drop = nn.Dropout(dropout)  # regularises the small data set; inactive in eval()
        self.head = nn.Linear(hidden_size, vocab_size)  # hidden state -> one logit per character

    def forward(self, ids: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``B x T x vocab_size`` for the character after each position, and the new state.

        ``ids`` is ``B x T`` (int64 character ids); ``state`` is the GRU state from a previous
        call (``None`` starts from an empty memory).
        """
        if ids.ndim != 2:
            raise ValueError(f"ids must be B x T character ids, got shape {tuple(ids.shape)}")
        hidden, state = self.gru(self.embed(ids), state)
        return self.head(self.drop(hidden)), state
