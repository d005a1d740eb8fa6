"""The honest model the hostile entries start from: an add-one bigram over the train tokens,
counted in load_model (the model process may read the train cache). Causal, normalised,
memoryless; context_length 64, so stories span several windows and batches hold many rows.
"""

import numpy as np
import torch

from vibe_research.lm.tokens import open_split

CONTEXT = 64


class Bigram:
    tokenizer, context_length = "bytes", CONTEXT

    def __init__(self) -> None:
        split = open_split("train", self.tokenizer)
        stream = np.asarray(split.tokens, dtype=np.int64)
        self.vocab_size = split.manifest.vocab_size
        counts = np.ones((self.vocab_size, self.vocab_size))
        np.add.at(counts, (stream[:-1], stream[1:]), 1)
        self.table = torch.log_softmax(torch.from_numpy(counts).log(), dim=-1)  # [V, V] float64

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens]


def peeked(model: Bigram, tokens: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """The bigram mixed with a point mass on each row's true next token, read from the input
    (the cheat of a non-causal model): [B, T, V]."""
    honest = model.table[tokens].exp()
    cheat = torch.zeros_like(honest)
    cheat[:, :-1].scatter_(-1, tokens[:, 1:, None], 1.0)
    cheat[:, -1] = honest[:, -1]
    return ((1 - weight) * honest + weight * cheat).log()


def load_model(run_dir) -> Bigram:
    return Bigram()
