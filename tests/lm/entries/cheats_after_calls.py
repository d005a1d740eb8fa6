"""Causal for as long as a contract probe would look (its first 256 tokens in all, whatever the
calls), then it mixes the true next token, read from its input, into every prediction."""

import torch
from bigram import Bigram, peeked

HONEST_TOKENS = 256


class LateCheater(Bigram):
    seen = 0

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in tokens:
            self.seen += len(row)
            honest = self.seen <= HONEST_TOKENS
            rows.append(super().logprobs(row[None]) if honest else peeked(self, row[None]))
        return torch.cat(rows)


def load_model(run_dir):
    return LateCheater()
