"""The offline planner's catalogue of research moves, instantiated against the current files.

Drawn from the seed research (n-gram sweeps, size sweeps, shallow fusion, distillation from an
n-gram teacher, seed-variance checks) and from what is known to work for small fast transformers
(wider before deeper, bf16 and compile, SwiGLU or ReLU^2, RMSNorm, RoPE, Muon). Each move has
a prior: the bpb improvement guessed before any evidence, used only to order untried moves.

A move's key is `family/variant:assignment`. A change of one knob reads `lr=0.002->0.004`: its
identity is the setting it reaches (`lr=0.004`), and once tried both settings count as measured,
so neither is proposed again, whatever direction would reach it. Run-only moves (sweeps of other
entries, seed checks) are identified by their whole assignment.
"""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vibe_research.llm.config_block import ConfigLine, Value, literal, read_config
from vibe_research.llm.context import ResearchContext
from vibe_research.llm.schemas import Edit, Risk, RunRequest

TRAIN = "experiments/train.py"
NGRAM = "experiments/ngram.py"
FUSION = "experiments/fusion.py"


@dataclass(frozen=True)
class Move:
    key: str
    title: str
    idea: str
    hypothesis: str
    why: str
    prior: float  # guessed bpb improvement (positive is better)
    risk: Risk
    edits: tuple[Edit, ...]
    runs: tuple[RunRequest, ...]
    words: tuple[str, ...]  # how a researcher might name it, for matching free-text ideas

    @property
    def family(self) -> str:
        return self.key.partition("/")[0]

    @property
    def variant(self) -> str:
        return self.key.partition(":")[0]

    @property
    def identity(self) -> str:
        return measured_settings(self.key)[0]


def measured_settings(key: str) -> list[str]:
    """The settings a move measures: what it reaches, then (for a knob change) where it started."""
    assignment = key.partition(":")[2]
    name, _, values = assignment.partition("=")
    start, arrow, target = values.partition("->")
    return [f"{name}={target}", f"{name}={start}"] if arrow else [assignment]


@dataclass(frozen=True)
class Sweep:
    family: str
    aliases: tuple[str, ...]
    label: str
    factor: float  # multiply (and divide) by this; 1 means add/subtract 1
    # By the type of the current value: (first value when it is 0, lowest, highest). A type
    # missing here (a fraction where steps were expected) is not swept.
    limits: dict[type, tuple[float, float, float]]
    prior_up: float
    prior_down: float
    why: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Switch:
    family: str
    aliases: tuple[str, ...]
    label: str
    options: tuple[Value, ...]
    priors: dict[Value, float]
    why: str
    words: tuple[str, ...]
    requires: Callable[[dict[str, ConfigLine]], bool] = lambda config: True
    # "auto" already picks the best option for the device it runs on (bf16 and compile where they
    # pay): a fixed value can only match it or lose on another machine, so it is not proposed
    auto_decides: bool = False


def _distilling(config: dict[str, ConfigLine]) -> bool:
    line = config.get("distill_steps")
    return line is not None and isinstance(line.value, int) and line.value > 0


SWEEPS = (
    Sweep(
        "width",
        ("d_model", "n_embd", "dim", "width"),
        "model width",
        4 / 3,
        {int: (0, 32, 1024)},
        0.03,
        -0.01,
        "on this machine wider was better at every size tried (llama2.c: dim 96 1.30, 128 1.22, 192 1.17 bpb)",
        ("wider", "width", "d_model", "n_embd", "dimension", "narrower"),
    ),
    Sweep(
        "lr",
        ("lr", "learning_rate", "max_lr"),
        "learning rate",
        2.0,
        {float: (0, 1e-4, 3e-2)},
        0.01,
        0.005,
        "a five-minute run is short; the best peak learning rate moves with size and batch",
        ("learning rate", "lr"),
    ),
    Sweep(
        "depth",
        ("n_layer", "n_layers", "depth", "layers"),
        "depth",
        1,
        {int: (0, 1, 12)},
        0.005,
        0.008,
        "the seed's best transformer had only 3 layers: depth costs steps in five minutes",
        ("deeper", "depth", "layers", "n_layer", "shallower"),
    ),
    Sweep(
        "context",
        ("context_length", "block_size", "seq_len", "context"),
        "context length",
        2.0,
        {int: (0, 32, 1024)},
        0.005,
        0.005,
        "stories are a few hundred tokens; longer context helps coherence but costs speed",
        ("context", "block_size", "sequence length", "seq_len"),
    ),
    Sweep(
        "batch",
        ("batch_size", "batch"),
        "batch size",
        2.0,
        {int: (0, 4, 512)},
        0.004,
        0.006,
        "smaller batches mean more optimizer steps in a fixed budget, larger ones better gradients",
        ("batch",),
    ),
    Sweep(
        "warmup",
        ("warmup_steps", "warmup_frac", "warmup", "warmup_iters"),
        "warmup",
        2.0,
        {int: (100, 10, 2000), float: (0.02, 0.005, 0.3)},
        0.003,
        0.003,
        "warmup protects the first steps from a high learning rate, at the cost of slow early progress",
        ("warmup",),
    ),
    Sweep(
        "warmdown",
        ("warmdown_frac", "warmdown_steps", "warmdown", "cooldown_frac", "decay_frac"),
        "warmdown",
        2.0,
        {int: (500, 50, 20000), float: (0.2, 0.02, 0.9)},
        0.006,
        0.002,
        "a linear warmdown to zero at the deadline is one of the cheapest wins in speedrun training",
        ("warmdown", "cooldown", "decay"),
    ),
    Sweep(
        "mlp",
        ("mlp_ratio",),
        "MLP ratio",
        1,
        {int: (0, 1, 8)},
        0.002,
        0.004,
        "a narrower MLP is faster per step; a wider one holds more per layer",
        ("mlp ratio", "mlp_ratio"),
    ),
    Sweep(
        "wd",
        ("weight_decay",),
        "weight decay",
        2.0,
        {float: (0.1, 1e-3, 0.5)},
        0.002,
        0.002,
        "regularisation matters little in one short epoch; checking cheaply",
        ("weight decay",),
    ),
)

SWITCHES = (
    Switch(
        "act",
        ("mlp", "activation", "mlp_activation", "act"),
        "MLP activation",
        ("swiglu", "relu2", "gelu"),
        {"swiglu": 0.01, "relu2": 0.008},
        "gated (SwiGLU) and squared-ReLU MLPs train faster per token in modern small models",
        ("swiglu", "relu2", "relu^2", "squared relu", "gelu", "activation"),
    ),
    Switch(
        "norm",
        ("norm", "norm_type", "normalization"),
        "normalisation",
        ("rmsnorm", "layernorm"),
        {"rmsnorm": 0.004},
        "RMSNorm is cheaper than LayerNorm and as good in small transformers",
        ("rmsnorm", "layernorm", "norm"),
    ),
    Switch(
        "pos",
        ("pos_emb", "positions", "position", "pos_encoding", "positional"),
        "positions",
        ("rope", "learned"),
        {"rope": 0.01},
        "rotary positions generalise better than learned ones and add no parameters",
        ("rope", "rotary", "position", "learned positions"),
    ),
    Switch(
        "tie",
        ("tie_embeddings", "tied_embeddings", "tie_weights"),
        "tied embeddings",
        (True, False),
        {True: 0.005, False: 0.002},
        "with a small vocabulary the embedding matrix is a large share of a tiny model",
        ("tie", "tied", "untie"),
    ),
    Switch(
        "opt",
        ("optimizer", "optim"),
        "optimizer",
        ("muon", "adamw"),
        {"muon": 0.015},
        "Muon set speed records in modded-nanogpt for the same wall clock",
        ("muon", "adamw", "optimizer"),
    ),
    Switch(
        "dtype",
        ("dtype", "precision"),
        "precision",
        ("bfloat16", "float32"),
        {"bfloat16": 0.02, "bf16": 0.02},
        "bf16 autocast nearly doubled llama2.c's tokens/s on this CPU (11.3k to 19.5k)",
        ("bf16", "bfloat16", "precision", "dtype"),
        auto_decides=True,
    ),
    Switch(
        "compile",
        ("compile", "torch_compile"),
        "torch.compile",
        (True, False),
        {True: 0.015, "on": 0.015},
        "compiling fuses kernels; in five minutes more tokens seen is most of the game",
        ("compile",),
        auto_decides=True,
    ),
    Switch(
        "vocab",
        ("tokenizer", "vocab"),
        "vocabulary",
        ("bpe:2048", "bpe:4096", "bpe:8192"),
        {"bpe:4096": 0.01, "bpe:2048": 0.006, "bpe:8192": 0.004},
        "vocabulary size trades embedding parameters against sequence length",
        ("vocab", "tokenizer", "bpe"),
    ),
    Switch(
        "distill",
        ("distill_steps",),
        "n-gram distillation",
        (200, 400, 100, 0),
        {200: 0.03, 400: 0.012, 100: 0.01},
        "the seed's best stories came from 200 steps of distillation from an n-gram teacher first",
        ("distill", "distillation", "teacher"),
    ),
    Switch(
        "alpha",
        ("distill_alpha",),
        "distillation weight",
        (0.3, 0.5, 0.7, 0.9),
        {0.7: 0.006, 0.5: 0.005, 0.9: 0.004, 0.3: 0.003},
        "how hard the student follows the teacher during distillation",
        ("alpha", "distill weight"),
        requires=_distilling,
    ),
    Switch(
        "teacher",
        ("distill_order", "teacher_order"),
        "teacher n-gram order",
        (3, 4, 5),
        {4: 0.004, 5: 0.003, 3: 0.002},
        "the seed's best n-gram was a 4-gram",
        ("teacher order",),
        requires=_distilling,
    ),
)


def catalogue(context: ResearchContext) -> list[Move]:
    """Every move that applies to the current files (tried or not), in catalogue order."""
    train = read_config(context.files.get(TRAIN, ""))
    moves = [move for sweep in SWEEPS for move in _sweep_moves(sweep, train, context)]
    moves += [move for switch in SWITCHES for move in _switch_moves(switch, train, context)]
    moves += _ngram_moves(context) + _fusion_moves(context) + _seed_moves(train, context)
    return moves


def _find(config: dict[str, ConfigLine], aliases: tuple[str, ...]) -> ConfigLine | None:
    return next((config[key] for key in aliases if key in config), None)


def _sweep_moves(
    sweep: Sweep, config: dict[str, ConfigLine], context: ResearchContext
) -> list[Move]:
    line = _find(config, sweep.aliases)
    if line is None or isinstance(line.value, bool | str):
        return []
    moves = []
    for direction, prior in (("up", sweep.prior_up), ("down", sweep.prior_down)):
        value = _stepped(sweep, line, config, direction)
        if value is None or value == line.value:
            continue
        verb = "Raise" if direction == "up" else "Lower"
        moves.append(
            Move(
                key=f"{sweep.family}/{direction}:{line.key}={_plain(line.value)}->{_plain(value)}",
                title=f"{verb} {sweep.label}: {line.key} {literal(line.value)} -> {literal(value)}",
                idea=f"set {line.key} = {literal(value)} in {TRAIN} (now {literal(line.value)})",
                hypothesis=_hypothesis(line, value, context),
                why=sweep.why,
                prior=prior,
                risk="low",
                edits=(line.edit(TRAIN, value),),
                runs=(RunRequest(seeds=context.seeds),),
                words=sweep.words,
            )
        )
    return moves


def _stepped(
    sweep: Sweep, line: ConfigLine, config: dict[str, ConfigLine], direction: str
) -> Value | None:
    """The next value of a sweep in `direction`, or None past its limits."""
    current = line.value
    limits = sweep.limits.get(type(current))
    if limits is None:
        return None
    start, low, high = limits
    if current == 0:
        if direction == "down":
            return None
        value: float = start
    elif sweep.factor == 1:
        value = current + (1 if direction == "up" else -1)
    else:
        value = current * sweep.factor if direction == "up" else current / sweep.factor
    if isinstance(current, int):
        quantum = _width_quantum(config) if sweep.family == "width" else 1
        value = round(value / quantum) * quantum
    if not low <= value <= high:
        return None
    return type(current)(value)


def _width_quantum(config: dict[str, ConfigLine]) -> int:
    """Widths stay multiples of 16 and of the head count, so heads split them evenly."""
    heads = _find(config, ("n_head", "n_heads", "heads"))
    return (
        math.lcm(16, heads.value)
        if heads and isinstance(heads.value, int) and heads.value > 0
        else 16
    )


def _switch_moves(
    switch: Switch, config: dict[str, ConfigLine], context: ResearchContext
) -> list[Move]:
    line = _find(config, switch.aliases)
    if (
        line is None
        or not switch.requires(config)
        or (switch.auto_decides and line.value == "auto")
    ):
        return []
    options = line.choices() or [v for v in switch.options if type(v) is type(line.value)]
    return [
        Move(
            # The variant must not hold the ':' that ends it (tokenizer specs like bpe:2048 do).
            key=f"{switch.family}/{_plain(value).replace(':', '-')}:{line.key}={_plain(line.value)}->{_plain(value)}",
            title=f"Switch {switch.label}: {line.key} {literal(line.value)} -> {literal(value)}",
            idea=f"set {line.key} = {literal(value)} in {TRAIN} (now {literal(line.value)})",
            hypothesis=_hypothesis(line, value, context),
            why=switch.why,
            prior=switch.priors.get(value, 0.0),
            risk="medium",
            edits=(line.edit(TRAIN, value),),
            runs=(RunRequest(seeds=context.seeds),),
            words=switch.words,
        )
        for value in options
        if value != line.value
    ]


def _plain(value: Value) -> str:
    """A value as it reads in a move key: literal, but strings unquoted."""
    return value if isinstance(value, str) else literal(value)


def _hypothesis(line: ConfigLine, value: Value, context: ResearchContext) -> str:
    return (
        f"with {line.key} = {literal(value)} instead of {literal(line.value)}, a {context.budget_s:g} s run "
        "reaches a lower validation bpb, beyond the seed noise"
    )


def _ngram_moves(context: ResearchContext) -> list[Move]:
    order = _find(read_config(context.files.get(NGRAM, "")), ("order", "n", "ngram_order"))
    if order is None or not isinstance(order.value, int):
        return []
    runs = tuple(
        RunRequest(seeds=context.seeds[:1], entry=NGRAM, overrides={order.key: n})
        for n in range(2, 7)
    )
    return [
        Move(
            key=f"ngram/sweep:ngram.{order.key}=2..6",
            title="Sweep n-gram orders 2 to 6",
            idea=f"run {NGRAM} with {order.key} = 2, 3, 4, 5, 6 (one run each; seconds, not minutes)",
            hypothesis="one order between 2 and 6 is clearly best on validation bpb; it is the teacher to distill from and fuse with",
            why="the seed's best n-gram was a 4-gram; the best order here picks the teacher for distillation and fusion",
            prior=0.012,
            risk="low",
            edits=(),
            runs=runs,
            words=("n-gram", "ngram", "kneser", "order"),
        )
    ]


def _fusion_moves(context: ResearchContext) -> list[Move]:
    """Fuse each run of the best transformer (one fusion run per base seed), so the fusion is
    compared over seeds like any other change."""
    base = _find(read_config(context.files.get(FUSION, "")), ("base_run", "base"))
    if base is None or not context.base_runs:
        return []
    names = ",".join(sorted(Path(run).name for run in context.base_runs))
    return [
        Move(
            key=f"fusion/best:fusion.{base.key}={names}",
            title="Shallow fusion of the best transformer with an n-gram",
            idea=f"run {FUSION} with {base.key} = each of the best transformer's {len(context.base_runs)} runs: "
            "blend its next-token distribution with the n-gram's",
            hypothesis="fusing the best transformer with an n-gram lowers validation bpb without making the judged stories worse",
            why="fusion cut the seed's perplexity from 8.53 to 7.38 at once; the judge must confirm the stories did not get worse",
            prior=0.02,
            risk="medium",
            edits=(),
            runs=tuple(
                RunRequest(seeds=[seed], entry=FUSION, overrides={base.key: run})
                for seed, run in zip(context.seeds, context.base_runs, strict=False)
            ),
            words=("fusion", "fuse", "blend", "knn", "cache head"),
        )
    ]


def _seed_moves(config: dict[str, ConfigLine], context: ResearchContext) -> list[Move]:
    if not config:
        return []
    fingerprint = hashlib.sha1(
        "\n".join(line.line for line in config.values()).encode()
    ).hexdigest()[:10]
    fresh = [max(context.seeds) + 1 + i for i in range(len(context.seeds))]
    inconclusive = bool(context.history) and context.history[-1].verdict.startswith("inconclusive")
    return [
        Move(
            key=f"seeds/check:config={fingerprint}",
            title="Seed-variance check of the current configuration",
            idea=f"rerun {TRAIN} unchanged with fresh seeds {fresh}",
            hypothesis="the current configuration's bpb varies by less than 0.01 across seeds, so the verdicts so far hold",
            why="identical runs differ by about 0.005 bpb; a lucky seed is not a better model",
            # After an inconclusive verdict the noise floor is what is missing: measure it first.
            prior=0.04 if inconclusive else 0.0,
            risk="low",
            edits=(),
            runs=(RunRequest(seeds=fresh),),
            words=("seed", "variance", "noise", "rerun"),
        )
    ]
