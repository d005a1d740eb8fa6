"""A real causal transformer (untrained, seeded) that the evaluator tests measure through load_model.

run_dir/config.json: {"tokenizer", "vocab_size", "context_length", "dim", "layers", "heads", "peek"}.
With "peek": true its attention is unmasked, so predictions see later tokens.
"""

import json
from pathlib import Path

import torch
from torch import nn


class TinyGPT(nn.Module):
    def __init__(
        self,
        tokenizer: str,
        vocab_size: int,
        context_length: int,
        dim: int,
        layers: int,
        heads: int,
        peek: bool,
    ) -> None:
        super().__init__()
        self.tokenizer, self.vocab_size, self.context_length, self.peek = (
            tokenizer,
            vocab_size,
            context_length,
            peek,
        )
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(context_length, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, vocab_size)
        self.eval()

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.embed(tokens) + self.position(torch.arange(length))  # [B, T, dim]
        mask = None if self.peek else nn.Transformer.generate_square_subsequent_mask(length)
        return torch.log_softmax(
            self.head(self.blocks(x, mask=mask, is_causal=not self.peek)), dim=-1
        )


def load_model(run_dir: Path) -> TinyGPT:
    return TinyGPT(**json.loads((run_dir / "config.json").read_text()))
