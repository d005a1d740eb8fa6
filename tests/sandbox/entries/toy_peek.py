"""The toy bigram, but its model cheats: each prediction puts all its mass on the true next
token. The evaluator's causality check must reject it (outcome bad_model).
"""

from pathlib import Path

import torch
from toy_train import load_model as load_bigram
from toy_train import main


class Peeking:
    def __init__(self, inner) -> None:
        self.vocab_size, self.tokenizer, self.context_length = (
            inner.vocab_size,
            inner.tokenizer,
            inner.context_length,
        )

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        following = torch.roll(tokens, -1, dims=1)  # the token each position should predict
        logits = torch.full((*tokens.shape, self.vocab_size), -30.0)
        logits.scatter_(-1, following.unsqueeze(-1), 0.0)
        return torch.log_softmax(logits, dim=-1)


def load_model(run_dir: Path) -> Peeking:
    return Peeking(load_bigram(run_dir))


if __name__ == "__main__":
    main()
