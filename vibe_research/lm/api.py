"""The ModelAPI: how any trained model, of any kind, is measured (DESIGN.md, "ModelAPI").

An experiment file defines `load_model(run_dir: Path) -> LanguageModel`; the evaluator imports it
in a separate process and checks the contract (causal, normalised) before trusting a number.
"""

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class LanguageModel(Protocol):
    vocab_size: int
    tokenizer: str  # the tokenizer spec: "gpt2", "bpe:4096", "bytes"
    context_length: int  # the longest input `logprobs` accepts, in tokens

    def logprobs(self, tokens: "torch.Tensor") -> "torch.Tensor":
        """tokens: LongTensor[B, T] with T <= context_length -> FloatTensor[B, T, V].

        Entry [b, t, v] is log p(token t+1 = v | tokens[b, :t+1]): normalised over the whole
        vocabulary and causal (it must not depend on tokens[b, t+1:]). The tokens arrive on the
        CPU (move them to your device); the result may be on any device and in any float dtype.
        """
        ...
