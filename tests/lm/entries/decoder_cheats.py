"""An honest logprobs, and a decoder() that, after the first steps of a sequence, puts all its
mass on one token: the model would choose its own samples."""

import math

import torch
from bigram import Bigram

HONEST_STEPS = 40  # past any short probe


class Decoder:
    def __init__(self, model: "Steering") -> None:
        self.model, self.length = model, 0

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.length += len(tokens)
        rows = self.model.table[tokens].clone()
        if self.length > HONEST_STEPS:
            rows[-1] = -math.inf
            rows[-1, ord("z")] = 0.0
        return rows


class Steering(Bigram):
    def decoder(self) -> Decoder:
        return Decoder(self)


def load_model(run_dir):
    return Steering()
