"""Each row uses the other rows of its batch: a unigram over every token in the batch (the other
stories' text) is mixed into every prediction."""

import math

import torch
from bigram import Bigram


class Leaking(Bigram):
    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(tokens.flatten(), minlength=self.vocab_size).double() + 1
        unigram = (counts / counts.sum()).log()
        half = math.log(0.5)
        return torch.logaddexp(self.table[tokens] + half, unigram + half)


def load_model(run_dir):
    return Leaking()
