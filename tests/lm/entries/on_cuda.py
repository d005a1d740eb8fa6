"""The bigram on the GPU: load_model moves it there, so CUDA is first touched in the session's
own process (a CUDA context cannot cross the fork the model process makes for every session)."""

import torch
from bigram import Bigram


class OnCuda(Bigram):
    def __init__(self) -> None:
        super().__init__()
        self.table = self.table.cuda()

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens.cuda()]  # the answer stays on the GPU: the evaluator moves it


def load_model(run_dir):
    return OnCuda()
