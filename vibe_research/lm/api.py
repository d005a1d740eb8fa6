"""The ModelAPI: how any trained model, of any kind, is measured (DESIGN.md, "ModelAPI").

An experiment file defines `load_model(run_dir: Path) -> LanguageModel`. The evaluator never
imports it: a separate model process does (vibe_research.lm.serve), in the sandbox, and answers
the scorer's requests, each session in a fresh process. The scorer checks the contract (causal,
normalised, no memory between calls) on the answers it receives before it trusts a number.
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
        vocabulary and causal (it must not depend on tokens[b, t+1:], on the other rows, or on
        earlier calls). The tokens arrive on the CPU (move them to your device); the result may be
        on any device and in any float dtype.

        A model may also accept a keyword `out`: a float32 CPU tensor [B, T, V], the evaluator's
        answer buffer. Writing the answer there and returning it (torch.log_softmax(..., out=out))
        saves the model process a copy of every answer; returning anything else is fine too.
        """
        ...


class Decoder(Protocol):
    """One sequence decoded incrementally (a KV cache, or whatever the model keeps).

    A model may offer `decoder() -> Decoder` next to `logprobs`: a fresh, empty sequence each
    call. The sampler uses it once the evaluator has seen it give the distributions `logprobs`
    gives for the same tokens; it spot-checks sampled steps against `logprobs` as well.
    """

    def step(self, tokens: "torch.Tensor") -> "torch.Tensor":
        """tokens: LongTensor[n], appended to the sequence so far -> FloatTensor[n, V].

        Row i is log p(next | the sequence up to and including tokens[i]), as row t of
        `logprobs` would give it. The sequence never grows past context_length tokens.
        """
        ...
