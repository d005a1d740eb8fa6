"""Baseline GPT trainer: the best TinyStories language model this machine trains in one budget.

    python experiments/train.py --out RUN_DIR --seed 0 --budget 300 [--set key=value ...]

Reads the train token cache through vibe_research.lm, trains a small decoder-only transformer
until the whole-process wall clock nears the budget, saves RUN_DIR/model.pt and reports progress
as JSON-line events on stdout. `load_model(run_dir)` gives the trained model back to the
evaluator (the ModelAPI contract in DESIGN.md).
"""

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vibe_research.lm.errors import UserError
from vibe_research.lm.events import emit
from vibe_research.lm.experiment import Experiment, fail, parse_args
from vibe_research.lm.tokens import TokenSplit, open_split

log = logging.getLogger(__name__)

CONFIG = {
    "tokenizer": "bpe:4096",  # token cache spec: bpe:N, gpt2 or bytes (`vibe-research data prepare`)
    "n_layer": 4,  # transformer blocks
    "n_head": 4,  # attention heads per block
    "n_embd": 192,  # residual stream width (channels)
    "mlp_ratio": 4,  # MLP hidden width / n_embd (swiglu uses 2/3 of it per branch, same params)
    "context": 256,  # tokens per training sequence, and the model's context length
    "batch_size": 16,  # sequences per optimizer step
    "lr": 4e-3,  # peak learning rate (AdamW; also the non-matrix params under muon)
    "muon_lr": 0.02,  # peak learning rate of the Muon matrices (optimizer = "muon" only)
    "warmup_steps": 50,  # linear warmup from 0 to the peak learning rate (optimizer steps)
    "warmdown_frac": 0.4,  # final fraction of the training time with linear decay to 0
    "weight_decay": 0.1,  # decoupled weight decay on 2-D weights
    "grad_clip": 1.0,  # max global gradient norm (0 = no clipping)
    "norm": "rmsnorm",  # layernorm | rmsnorm
    "mlp": "gelu",  # gelu | swiglu | relu2
    "positions": "rope",  # learned | rope
    "tie_embeddings": True,  # share the token embedding with the LM head
    "optimizer": "adamw",  # adamw | muon (Muon for the blocks' matrices, AdamW for the rest)
    "device": "auto",  # auto | cpu | cuda | mps (auto: cuda, then mps, then cpu)
    "dtype": "auto",  # auto | fp32 | bf16 (autocast; weights stay fp32)
    "compile": "auto",  # auto | on | off (torch.compile)
    "threads": 0,  # CPU threads for torch (0 = every core this process may use)
    "log_every": 25,  # optimizer steps between step events
    "distill_steps": 0,  # first steps trained against an n-gram teacher (0 = off; 200 when on)
    "distill_alpha": 0.5,  # weight of the teacher KL in the distillation loss (CE gets 1 - alpha)
    "distill_order": 4,  # n-gram order of the teacher
}

CHOICES = {
    "norm": {"layernorm", "rmsnorm"},
    "mlp": {"gelu", "swiglu", "relu2"},
    "positions": {"learned", "rope"},
    "optimizer": {"adamw", "muon"},
    "device": {"auto", "cpu", "cuda", "mps"},
    "dtype": {"auto", "fp32", "bf16"},
    "compile": {"auto", "on", "off"},
}
CHECKPOINT_FORMAT = 1
MAX_OP_CONTEXT = 512  # longest sequence trained through causal_attention (measured at 256)
SAVE_MARGIN_S = 1.5  # seconds kept after the last step for saving the model and exiting
MIN_COMPILE_BUDGET_S = (
    120  # auto compiles only when the budget amortises it (20-30 s idle, minutes under load)
)


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    tokenizer: str
    context: int
    n_layer: int
    n_head: int
    n_embd: int
    mlp_ratio: int
    norm: str
    mlp: str
    positions: str
    tie_embeddings: bool


def make_norm(kind: str, dim: int) -> nn.Module:
    return nn.RMSNorm(dim) if kind == "rmsnorm" else nn.LayerNorm(dim)


def rope_tables(context: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, each [context, head_dim / 2]."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(context).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, H, hd] pairwise (first half, second half) by the angles of positions 0..T-1.
    Rotating before the heads move in front of the positions keeps the backward pass's writes
    contiguous (1.7x faster fwd+bwd than the same arithmetic on [B, H, T, hd])."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[: x.shape[1], None].to(x.dtype), sin[: x.shape[1], None].to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def causal_attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention of contiguous q, k, v [B, H, T, hd] in batched matrix products: the output
    [B, H, T, hd] and the attention weights [B * H, T, T] that the backward pass reuses."""
    b, h, t, d = q.shape
    mask = torch.full((t, t), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
    scores = torch.baddbmm(
        mask.expand(b * h, t, t),
        q.view(b * h, t, d),
        k.view(b * h, t, d).transpose(1, 2),
        alpha=d**-0.5,
    )
    weights = torch.softmax(scores, dim=-1)
    return torch.bmm(weights, v.view(b * h, t, d)).view(b, h, t, d), weights


def causal_attention_backward(
    grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of q, k and v from the output's gradient and the saved attention weights."""
    b, h, t, d = q.shape
    grad = grad.reshape(b * h, t, d)
    grad_v = torch.bmm(weights.transpose(1, 2), grad)
    grad_weights = torch.bmm(grad, v.view(b * h, t, d).transpose(1, 2))
    grad_scores = torch._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
    empty = grad.new_empty(b * h, t, d)
    grad_q = torch.baddbmm(empty, grad_scores, k.view(b * h, t, d), beta=0, alpha=d**-0.5)
    grad_k = torch.baddbmm(
        empty, grad_scores.transpose(1, 2), q.view(b * h, t, d), beta=0, alpha=d**-0.5
    )
    return grad_q.view(b, h, t, d), grad_k.view(b, h, t, d), grad_v.view(b, h, t, d)


def define_causal_attention() -> Callable:
    """The two functions above as one custom op with its own backward, which torch.compile calls
    as it is. On a CPU in bf16 it trains 2x faster than scaled_dot_product_attention, whose
    flash backward dominated the step (benchmarks/README.md); inductor would rewrite the same
    arithmetic, written plainly, back into that kernel. Defined once per process (train.py may be
    imported more than once in one)."""
    name = "vibe_train::causal_attention"
    if hasattr(torch.ops.vibe_train, "causal_attention"):
        return torch.ops.vibe_train.causal_attention
    forward = torch.library.custom_op(name, causal_attention_forward, mutates_args=())
    backward = torch.library.custom_op(
        f"{name}_backward", causal_attention_backward, mutates_args=()
    )

    @forward.register_fake
    def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, t, _ = q.shape
        return torch.empty_like(q), q.new_empty(b * h, t, t)

    @backward.register_fake
    def _(grad, q, k, v, weights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

    def save(ctx, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, ...]) -> None:
        ctx.save_for_backward(*inputs, output[1])

    def differentiate(ctx, grad: torch.Tensor, _grad_weights: torch.Tensor) -> tuple:
        return backward(grad.contiguous(), *ctx.saved_tensors)

    forward.register_autograd(differentiate, setup_context=save)
    return forward


causal_attention = define_causal_attention()


def bf16_cpu_training(x: torch.Tensor) -> bool:
    """Where causal_attention beats scaled_dot_product_attention: training on a CPU in bf16 (in
    fp32 the flash kernel is faster; on CUDA it is far faster), at contexts up to
    MAX_OP_CONTEXT (the op keeps [B * H, T, T] weights for the backward pass: memory grows with
    T squared, where the flash kernel's grows with T)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.bfloat16
        and torch.is_grad_enabled()
        and x.shape[-2] <= MAX_OP_CONTEXT
    )


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation. Compiled, as x * sigmoid(2u) = x * (1 + tanh u) / 2 in fp32:
    the same function, which inductor's CPU code runs in half the time of its tanh."""
    if not torch.compiler.is_compiling():
        return F.gelu(x, approximate="tanh")
    f = x.float()
    return (f * torch.sigmoid(1.5957691216057308 * (f + 0.044715 * f * f * f))).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.rope = cfg.positions == "rope"
        if self.rope:
            cos, sin = rope_tables(cfg.context, cfg.n_embd // cfg.n_head)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, cache: "LayerCache | None" = None) -> torch.Tensor:
        """x [B, T, D]; with a cache, x holds the T positions after the cache's and is added to it."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, D // self.n_head).unbind(2)
        start = cache.length if cache else 0
        if self.rope:
            cos, sin = self.cos[start:], self.sin[start:]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, hd]
        if cache is None and bf16_cpu_training(q):
            y = causal_attention(q.contiguous(), k.contiguous(), v.contiguous())[0]
        elif cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = cache.extend(k, v)  # [B, H, start + T, hd]
            # query i is position start + i: it sees keys 0 .. start + i (one query sees them all)
            mask = None
            if T > 1:
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


@dataclass
class LayerCache:
    """Keys and values [1, H, context, hd] of one block for the positions decoded so far."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        self.keys[:, :, self.length : end], self.values[:, :, self.length : end] = k, v
        return self.keys[:, :, :end], self.values[:, :, :end]


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        hidden = cfg.mlp_ratio * cfg.n_embd
        if self.kind == "swiglu":
            hidden = 2 * hidden // 3  # two input branches: same parameter count as the others
        self.fc = nn.Linear(cfg.n_embd, 2 * hidden if self.kind == "swiglu" else hidden, bias=False)
        self.proj = nn.Linear(hidden, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.kind == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:
            h = gelu_tanh(h)
        return self.proj(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(cfg.norm, cfg.n_embd), Attention(cfg)
        self.norm2, self.mlp = make_norm(cfg.norm, cfg.n_embd), MLP(cfg)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cache)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Decoder-only transformer; also the LanguageModel the evaluator measures."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size, self.tokenizer, self.context_length = (
            cfg.vocab_size,
            cfg.tokenizer,
            cfg.context,
        )
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.context, cfg.n_embd) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg.norm, cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):  # GPT-2: residual branches scaled down with depth
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def features(
        self, tokens: torch.Tensor, caches: list[LayerCache] | None = None
    ) -> torch.Tensor:
        """Final hidden states [B, T, D] (after the last norm, before the LM head) of tokens [B, T];
        with `caches` (one per block), of the T positions that follow the cached ones."""
        start = caches[0].length if caches else 0
        x = self.wte(tokens)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(start, start + tokens.shape[1], device=tokens.device))
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches else None)
        if caches:
            for cache in caches:
                cache.length += tokens.shape[1]
        return self.norm_f(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Next-token logits [B, T, V] from features [B, T, D]."""
        return self.lm_head(features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))

    @torch.no_grad()
    def logprobs(self, tokens: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token log-probabilities [B, T, V] in fp32 for tokens [B, T] (T <= context_length);
        written into `out` (the evaluator's answer buffer) when given and on this device."""
        logits = self(tokens).float()
        if out is not None and out.device == logits.device:
            return torch.log_softmax(logits, dim=-1, out=out)
        return F.log_softmax(logits, dim=-1)

    def decoder(self) -> "KVDecoder":
        """A fresh sequence to decode token by token (the ModelAPI's optional incremental step)."""
        return KVDecoder(self)


class KVDecoder:
    """Incremental decoding of one sequence: each block keeps the keys and values of the
    positions so far, so a step costs one position's forward pass, not the whole window's."""

    def __init__(self, model: GPT) -> None:
        cfg, weight = model.cfg, model.wte.weight
        shape = (1, cfg.n_head, cfg.context, cfg.n_embd // cfg.n_head)
        self.model, self.context = model, cfg.context
        self.caches = [
            LayerCache(weight.new_empty(shape), weight.new_empty(shape)) for _ in model.blocks
        ]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens LongTensor[n] appended to the sequence -> log-probabilities [n, V] in fp32."""
        if self.caches[0].length + len(tokens) > self.context:
            raise ValueError(f"the sequence would pass the context of {self.context} tokens")
        features = self.model.features(tokens.to(self.model.wte.weight.device)[None], self.caches)
        return F.log_softmax(self.model.head(features).float(), dim=-1)[0]


def load_model(run_dir: Path) -> GPT:
    """The trained model saved in run_dir, on the CPU in fp32, in eval mode."""
    path = Path(run_dir) / "model.pt"
    if not path.is_file():
        raise UserError(
            f"{path} is missing: train first with `python experiments/train.py --out {run_dir}`"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: checkpoint format {checkpoint.get('format')} is not {CHECKPOINT_FORMAT}; retrain it"
        )
    model = GPT(ModelConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def save_model(model: GPT, run_dir: Path) -> None:
    """Write run_dir/model.pt atomically (temp file + rename)."""
    path = run_dir / "model.pt"
    temp = path.with_suffix(".pt.tmp")
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "model_config": asdict(model.cfg),
            "state_dict": model.state_dict(),
        },
        temp,
    )
    temp.replace(path)


# ---------------------------------------------------------------------------------------------
# Optimizers


def newton_schulz(grad: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately orthogonalise a 2-D matrix (Muon's quintic iteration, Keller Jordan 2024)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = grad.bfloat16()
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if transposed else x).to(grad.dtype)


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose 2-D updates are orthogonalised; for hidden matrices only."""

    def __init__(self, params: list[nn.Parameter], lr: float, momentum: float = 0.95) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                buf = self.state[param].setdefault("momentum", torch.zeros_like(param))
                buf.mul_(group["momentum"]).add_(param.grad)
                update = newton_schulz(param.grad.add(buf, alpha=group["momentum"]))
                scale = max(1.0, param.shape[0] / param.shape[1]) ** 0.5
                param.add_(update, alpha=-group["lr"] * scale)


def make_optimizers(model: GPT, config: dict) -> list[torch.optim.Optimizer]:
    """AdamW over everything, or Muon for the blocks' matrices plus AdamW for the rest."""
    block_matrices = [
        p for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2
    ]
    muon_ids = {id(p) for p in block_matrices} if config["optimizer"] == "muon" else set()
    adam_params = [p for p in model.parameters() if id(p) not in muon_ids]
    groups = [
        {
            "params": [p for p in adam_params if p.dim() >= 2],
            "weight_decay": config["weight_decay"],
        },
        {"params": [p for p in adam_params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(groups, lr=config["lr"], betas=(0.9, 0.95))
    ]
    if muon_ids:
        optimizers.append(Muon(block_matrices, lr=config["muon_lr"]))
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["peak_lr"] = group["lr"]
    return optimizers


def lr_scale(step: int, time_frac: float, config: dict) -> float:
    """Multiplier of the peak rate: linear warmup over steps, then linear warmdown over the last
    `warmdown_frac` of the training time (the budget is wall clock, so the schedule is too)."""
    warmup = min(1.0, (step + 1) / max(1, config["warmup_steps"]))
    warmdown = (
        min(1.0, (1.0 - time_frac) / config["warmdown_frac"])
        if config["warmdown_frac"] > 0
        else 1.0
    )
    return max(0.0, min(warmup, warmdown))


# ---------------------------------------------------------------------------------------------
# Hardware choices


def check_config(config: dict) -> None:
    """Reject values the types alone do not catch, in one line that names the key."""
    for key, allowed in CHOICES.items():
        if config[key] not in allowed:
            raise UserError(
                f"--set {key}={config[key]}: must be one of {', '.join(sorted(allowed))}"
            )
    for key in (
        "n_layer",
        "n_head",
        "n_embd",
        "mlp_ratio",
        "context",
        "batch_size",
        "log_every",
        "distill_order",
    ):
        if config[key] < 1:
            raise UserError(f"--set {key}={config[key]}: must be a positive integer")
    for key in ("threads", "warmup_steps", "distill_steps", "weight_decay", "grad_clip"):
        if config[key] < 0:
            raise UserError(f"--set {key}={config[key]}: must not be negative")
    for key in ("lr", "muon_lr"):
        if not config[key] > 0:
            raise UserError(f"--set {key}={config[key]}: must be a positive rate")
    for key in ("distill_alpha", "warmdown_frac"):
        if not 0.0 <= config[key] <= 1.0:
            raise UserError(f"--set {key}={config[key]}: must lie in [0, 1]")
    if config["n_embd"] % config["n_head"] or (config["n_embd"] // config["n_head"]) % 2:
        raise UserError(
            f"n_embd={config['n_embd']} must split into n_head={config['n_head']} heads of even width"
        )


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available[choice]:
        raise UserError(f"--set device={choice}: no {choice} device here; use device=auto or cpu")
    return torch.device(choice)


def cpu_has_fast_bf16() -> bool:
    # torch exposes these probes only privately; without them, bf16 on a CPU is emulated and slow
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def pick_dtype(choice: str, device: torch.device) -> torch.dtype:
    """bf16 autocast where the hardware runs it natively (CUDA, CPUs with AMX or AVX512-BF16)."""
    if choice != "auto":
        return torch.bfloat16 if choice == "bf16" else torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else torch.float32


def want_compile(choice: str, device: torch.device, budget: float) -> bool:
    """Compile pays on CUDA and on CPUs, in bf16 and in fp32 alike (1.14-1.20x the training
    loop's tokens/s on CPUs with and without AVX-512, benchmarks/README.md), once the budget
    amortises it; not on MPS."""
    if choice != "auto":
        return choice == "on"
    return device.type in ("cuda", "cpu") and budget >= MIN_COMPILE_BUDGET_S


# ---------------------------------------------------------------------------------------------
# Data


class Batches:
    """Random windows of the train token stream, each [B, T + 1], drawn in one vectorised gather."""

    def __init__(
        self, tokens: np.ndarray, batch_size: int, context: int, seed: int, device: torch.device
    ) -> None:
        if len(tokens) <= context + 1:
            raise UserError(
                f"the train split has {len(tokens)} tokens, fewer than context + 1 = {context + 1}"
            )
        self.tokens = np.asarray(tokens).astype(np.int64)  # a few MB: held in memory
        self.offsets = np.arange(context + 1)
        self.batch_size, self.device = batch_size, device
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, each LongTensor [B, T]."""
        starts = self.rng.integers(0, len(self.tokens) - len(self.offsets), size=self.batch_size)
        window = torch.from_numpy(self.tokens[starts[:, None] + self.offsets]).to(self.device)
        return window[:, :-1], window[:, 1:]


# ---------------------------------------------------------------------------------------------
# Training


class NextTokenLoss(nn.Module):
    """Mean next-token cross-entropy of a model: the unit torch.compile turns into one graph, so
    the fp32 softmax over the vocabulary fuses with the LM head (compiling the model alone, the
    [B, T, V] logits are written out and read back, and compile gains nothing on a CPU)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs).float()  # [B, T, V]: the softmax in fp32
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@dataclass
class Trainer:
    """One training run: the model, its loss (compiled or not), its optimizers and one step."""

    model: GPT
    next_token_loss: nn.Module
    optimizers: list[torch.optim.Optimizer]
    config: dict
    device: torch.device
    dtype: torch.dtype
    teacher: object | None = None  # distill.Teacher while distilling
    distill_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, distill: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training loss, and the teacher KL when distilling (else None). Distillation steps run
        eagerly: they are few, and a second compiled graph would cost more than it saves."""
        with torch.autocast(
            self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32
        ):
            if not distill:
                return self.next_token_loss(inputs, targets), None
            logits = self.model(inputs).float()  # [B, T, V]
        ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        kl = self.distill_loss(logits, self.teacher.targets(inputs))
        alpha = self.config["distill_alpha"]
        return (1 - alpha) * ce + alpha * kl, kl

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, step: int, time_frac: float
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        scale = lr_scale(step, time_frac, self.config)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["peak_lr"] * scale
        loss, kl = self.loss(inputs, targets, step < self.config["distill_steps"])
        loss.backward()
        if self.config["grad_clip"] > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config["grad_clip"])
        for optimizer in self.optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return loss.detach(), None if kl is None else kl.detach()


def compile_or_fallback(
    trainer: Trainer, batch: tuple[torch.Tensor, torch.Tensor], choice: str
) -> bool:
    """Compile the loss with one forward and backward pass (the graphs training will reuse; no
    update is applied); under auto, fall back to eager if compiling fails."""
    eager = trainer.next_token_loss
    trainer.next_token_loss = torch.compile(eager)
    try:
        trainer.loss(*batch, distill=False)[0].backward()
        trainer.model.zero_grad(set_to_none=True)
    except torch._dynamo.exc.TorchDynamoException as exc:
        if choice == "on":
            raise
        log.warning("torch.compile failed, training eager: %s", str(exc).splitlines()[0])
        trainer.next_token_loss = eager
        return False
    return True


def attach_teacher(trainer: Trainer, split: TokenSplit) -> None:
    """Count the n-gram teacher of distillation (experiments/distill.py); it is built on the clock."""
    # a sibling file, needed only when distilling
    from distill import build_teacher, distill_loss

    manifest = split.manifest
    trainer.teacher = build_teacher(
        np.asarray(split.tokens),
        manifest.vocab_size,
        trainer.config["distill_order"],
        eot=manifest.eot,
    )
    trainer.distill_loss = distill_loss


def train(experiment: Experiment, split: TokenSplit) -> None:
    config, seed = experiment.config, experiment.seed
    torch.manual_seed(seed)
    device = pick_device(config["device"])
    if device.type == "cpu":
        torch.set_num_threads(config["threads"] or len(os.sched_getaffinity(0)))
    dtype = pick_dtype(config["dtype"], device)
    vocab_size = split.manifest.vocab_size
    cfg = ModelConfig(
        vocab_size=vocab_size,
        **{k: config[k] for k in ModelConfig.__dataclass_fields__ if k != "vocab_size"},
    )
    model = GPT(cfg).to(device)
    params = sum(p.numel() for p in model.parameters())
    trainer = Trainer(
        model, NextTokenLoss(model), make_optimizers(model, config), config, device, dtype
    )
    batches = Batches(split.tokens, config["batch_size"], config["context"], seed, device)
    compiled = want_compile(config["compile"], device, experiment.budget)
    emit(
        "start",
        device=device.type,
        dtype=str(dtype).removeprefix("torch."),
        params=params,
        compile=compiled,
        config=config,
    )
    if config["distill_steps"] > 0:
        attach_teacher(trainer, split)
    if compiled:
        compiled = compile_or_fallback(trainer, batches.next(), config["compile"])
    steps, tokens_seen = run_loop(trainer, batches, experiment)
    save_model(model, experiment.out)
    elapsed = experiment.elapsed()
    emit(
        "done",
        params=params,
        steps=steps,
        tokens=tokens_seen,
        device=device.type,
        dtype=str(dtype).removeprefix("torch."),
        compile=compiled,
        elapsed_s=round(elapsed, 2),
        tokens_per_s=round(tokens_seen / max(elapsed, 1e-9), 1),
    )


def run_loop(trainer: Trainer, batches: Batches, experiment: Experiment) -> tuple[int, int]:
    """Step until the budget's end minus the save margin, or a stop request; returns steps and tokens."""
    config = trainer.config
    start = time.perf_counter()
    end = start + experiment.deadline() - SAVE_MARGIN_S
    step, tokens_seen, last_step_s = 0, 0, 0.0
    tokens_per_step = config["batch_size"] * config["context"]
    while time.perf_counter() + last_step_s < end and not experiment.stop_requested():
        before = time.perf_counter()
        time_frac = (before - start) / max(end - start, 1e-9)
        loss, kl = trainer.step(*batches.next(), step, time_frac)
        step, tokens_seen = step + 1, tokens_seen + tokens_per_step
        last_step_s = time.perf_counter() - before
        if step % config["log_every"] == 0 or step == 1:
            extra = {} if kl is None else {"distill_loss": round(kl.item(), 4)}
            emit(
                "step",
                step=step,
                loss=round(loss.item(), 4),
                tokens=tokens_seen,
                tokens_per_s=round(
                    tokens_seen / (time.perf_counter() - start), 1
                ),  # the training loop's rate
                elapsed_s=round(
                    experiment.elapsed(), 2
                ),  # on the budget's clock: since process start
                lr_scale=round(lr_scale(step - 1, time_frac, config), 4),
                **extra,
            )
    return step, tokens_seen


def main() -> None:
    experiment = parse_args(CONFIG)
    try:
        check_config(experiment.config)
        split = open_split("train", experiment.config["tokenizer"])
        train(experiment, split)
    except UserError as exc:
        fail(str(exc))
    # The model is saved and the events are out: skip the interpreter's teardown of torch, which
    # takes seconds of a budget that counts the whole process.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
