"""Shallow fusion: a trained transformer mixed with an n-gram model, a kNN head and a cache head.

    python experiments/fusion.py --out RUN_DIR --seed 0 --budget 300 --set base_run=RUN [--set heads=ngram,knn,cache ...]

    p(v | context) = w_lm p_lm(v) + w_ngram p_ngram(v) + w_knn p_knn(v) + w_cache p_cache(v)

- lm: the base run's transformer (its experiment file's load_model; it must expose
  features(tokens) -> [B, T, D] and head(features) -> logits, as train.py's GPT does).
- ngram: Kneser-Ney counted from the train tokens (vibe_research.lm.ngram).
- knn: the base model's final hidden states of training positions in a faiss index, each keyed
  to the token that followed (Khandelwal et al. 2019); p_knn is a softmax over the k nearest
  neighbours' negative squared distances / temperature, summed per token; the temperature is
  fitted with the weights unless set. The datastore is capped by knn_memory_mb.
- cache: the tokens already in the context, the one j positions back weighted decay^j.

Every head is normalised over the whole vocabulary, and the weights sum to 1, so the mixture is.
The model has a decoder() for sampling: each step computes the heads for its new tokens only.
The weights are fitted by EM on the last fit_tokens of the TRAINING stream, which the n-gram and
the datastore leave out; validation is never read (a run told to fit on it is refused). The base
transformer did train on that slice, so the fit leans towards it; the evaluator's numbers are on
validation all the same.
"""

import math
import sys
from pathlib import Path

import faiss
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from vibe_research.lm import atomic
from vibe_research.lm.entry import ModelRejected
from vibe_research.lm.entry import load_model as load_entry
from vibe_research.lm.errors import UserError, validation_error_line
from vibe_research.lm.events import emit
from vibe_research.lm.experiment import Experiment, parse_args
from vibe_research.lm.ngram import MAX_ORDER, KneserNey
from vibe_research.lm.scoring import story_windows
from vibe_research.lm.tokens import open_split

CONFIG = {
    "base_run": "",  # run folder of the trained transformer (required)
    "base_entry": "",  # experiment file whose load_model reads base_run ("" = train.py beside this file)
    "heads": "ngram,knn,cache",  # heads mixed with the transformer: any of ngram, knn, cache ("" = none)
    "ngram_order": 4,  # Kneser-Ney order of the ngram head, 1 to 6
    "knn_k": 16,  # neighbours per query
    "knn_temperature": 0.0,  # divides the negative squared distances before the softmax (0 = fit from KNN_TEMPERATURES)
    "knn_memory_mb": 64,  # datastore cap: keys (D float32) + token + faiss id per entry
    "knn_nprobe": 8,  # inverted lists faiss visits per query (more: slower, closer to exact)
    "cache_decay": 0.98,  # weight of a context token j positions back: decay ** j
    "fit_split": "train",  # where the weights are fitted; only train is allowed (valid would leak)
    "fit_tokens": 16384,  # held-out tail of the train stream the weights are fitted on
    "em_iterations": 50,  # EM steps for the mixture weights
    "batch_rows": 16,  # rows per forward pass while building and fitting
}
HEADS = ("ngram", "knn", "cache")
FORMAT_VERSION = 1
RUN_FILE, NGRAM_FILE, KNN_INDEX, KNN_VALUES = (
    "fusion.json",
    "ngram.npz",
    "knn.faiss",
    "knn_values.npy",
)
FLAT_BELOW = 20_000  # datastores smaller than this are searched exactly
PER_QUERY_SEARCH = 2**31 - 1  # faiss's query count (an int) from which it batches distances: never
POINTS_PER_LIST = 64  # inverted lists: one per this many entries (faiss wants >= 39 to train)
MAX_LISTS = 256
WEIGHT_FLOOR = 1e-6
KNN_TEMPERATURES = (
    1.0,
    3.0,
    10.0,
    30.0,
    100.0,
    300.0,
)  # tried on the held-out tokens when knn_temperature = 0


class FusionRun(BaseModel):
    """RUN_DIR/fusion.json: everything load_model needs besides the n-gram and kNN files."""

    # a head alone can miss a token entirely: its nats are then "Infinity"
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")
    format_version: int = FORMAT_VERSION
    base_run: str
    base_entry: str
    base_params: int  # learned parameters of the transformer (the heads are counts and a datastore)
    heads: list[str]
    weights: dict[str, float]  # "lm" and each head; they sum to 1
    knn_k: int
    knn_temperature: float
    knn_nprobe: int
    cache_decay: float
    fit_tokens: int  # held-out train tokens the weights were fitted on
    fit_nats: dict[str, float]  # nats per token on them: the mixture and each part alone


class KnnHead:
    """p_knn over the vocabulary from a faiss index of hidden states and the tokens that followed."""

    def __init__(
        self, index: faiss.Index, values: np.ndarray, k: int, temperature: float, vocab_size: int
    ) -> None:
        self.index, self.values, self.vocab_size = (
            index,
            torch.from_numpy(values.astype(np.int64)),
            vocab_size,
        )
        self.k, self.temperature = min(k, index.ntotal), temperature
        # faiss computes the distances of many queries at once as one matrix product, whose last
        # bits (and so, at near ties, the neighbours) depend on how many queries came together;
        # query by query they depend on the query alone, as a row's answer must
        faiss.cvar.distance_compute_blas_threshold = PER_QUERY_SEARCH

    def neighbours(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [N, D] -> squared distances [N, k] and the neighbours' tokens [N, k] (-1: none found)."""
        # given fewer queries than threads, faiss splits the datastore among the threads instead
        # of the queries, and its distances round differently: those few go on one thread
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads if len(features) >= threads else 1)
        try:
            distances, ids = self.index.search(
                np.ascontiguousarray(features.numpy(), dtype=np.float32), self.k
            )
        finally:
            faiss.omp_set_num_threads(threads)
        tokens = torch.where(
            torch.from_numpy(ids >= 0), self.values[torch.from_numpy(np.maximum(ids, 0))], -1
        )
        return torch.from_numpy(distances), tokens

    @staticmethod
    def weights(distances: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
        """[N, k]: softmax of -distance / temperature over the neighbours found."""
        weights = torch.where(tokens >= 0, torch.softmax(-distances / temperature, dim=-1), 0.0)
        return weights / weights.sum(dim=-1, keepdim=True)

    def probs(self, features: torch.Tensor) -> torch.Tensor:
        """features [N, D] -> [N, V]."""
        distances, tokens = self.neighbours(features)
        out = torch.zeros(len(features), self.vocab_size)
        out.scatter_add_(1, tokens.clamp(min=0), self.weights(distances, tokens, self.temperature))
        return out


def cache_probs(
    tokens: torch.Tensor, vocab_size: int, decay: float, first: int = 0
) -> torch.Tensor:
    """tokens [B, T] -> [B, T - first, V]: position t (from `first` on) spreads mass over
    tokens[:, :t+1], decay ** (t - j) each."""
    length = tokens.shape[1]
    steps = torch.arange(length)
    lag = (steps[first:, None] - steps[None, :]).clamp(min=0).double()
    weights = torch.where(steps[first:, None] >= steps[None, :], decay**lag, 0.0)  # causal
    weights = (weights / weights.sum(dim=1, keepdim=True)).float()  # [T - first, T]
    onehot = torch.nn.functional.one_hot(tokens, vocab_size).float()  # [B, T, V]
    return weights @ onehot


class FusedModel:
    """The ModelAPI face of the mixture."""

    def __init__(
        self,
        base: torch.nn.Module,
        ngram: KneserNey | None,
        knn: KnnHead | None,
        cache_decay: float | None,
        weights: dict[str, float],
    ) -> None:
        self.base, self.ngram, self.knn, self.cache_decay, self.weights = (
            base,
            ngram,
            knn,
            cache_decay,
            weights,
        )
        self.vocab_size, self.tokenizer, self.context_length = (
            base.vocab_size,
            base.tokenizer,
            base.context_length,
        )

    def base_outputs(
        self, tokens: torch.Tensor, first: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The base model's features and logits [B, T - first, D or V], row by row at full width.

        The kNN head's neighbours jump with the last bits of a feature, so a row must get the same
        bits however the evaluator batches or cuts it. Those bits move with the width a row is
        asked at (up to 3e-6 for the default model), and a BLAS may also choose its kernels by the
        batch: each row alone, padded to the context width, depends on its own tokens alone. So
        do its logits, and the whole mixture answers a row the same in any request. From `first`
        on (a decoder's new positions) the logits are computed for those positions alone."""
        width = tokens.shape[1]
        padded = torch.nn.functional.pad(tokens, (0, self.context_length - width))  # token 0
        rows = [self.base.features(row[None]) for row in padded]  # each [1, context, D]
        features = torch.cat(rows)[:, first:width]
        if first == 0:
            logits = torch.cat([self.base.head(row) for row in rows])[:, :width]
        else:
            logits = self.base.head(features)
        return features, logits.float()

    def parts(self, tokens: torch.Tensor, first: int = 0) -> dict[str, torch.Tensor]:
        """Log-probabilities [B, T - first, V] of the transformer and of each head, for the
        positions from `first` on."""
        tokens = tokens.cpu()
        with torch.inference_mode():
            features, logits = self.base_outputs(tokens, first)
            out = {"lm": torch.log_softmax(logits, dim=-1)}
            if self.ngram is not None:
                out["ngram"] = torch.from_numpy(
                    self.ngram.next_token_distributions(tokens.numpy(), np.float32)[:, first:]
                ).log()
            if self.knn is not None:
                flat = features.float().reshape(-1, features.shape[-1])
                out["knn"] = self.knn.probs(flat).reshape(*features.shape[:2], -1).log()
            if self.cache_decay is not None:
                out["cache"] = cache_probs(tokens, self.vocab_size, self.cache_decay, first).log()
        return out

    def mixture(self, tokens: torch.Tensor, first: int = 0) -> torch.Tensor:
        """float32 [B, T - first, V]: log of the weighted mixture from position `first` on."""
        mixture = None
        for name, logs in self.parts(tokens, first).items():
            weighted = logs + math.log(self.weights[name])
            mixture = weighted if mixture is None else torch.logaddexp(mixture, weighted)
        return mixture

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens LongTensor[B, T] -> float32 [B, T, V]: log of the weighted mixture."""
        return self.mixture(tokens)

    def decoder(self) -> "FusedDecoder":
        return FusedDecoder(self)


class FusedDecoder:
    """Incremental sampling of the mixture: a step computes the heads for its new positions only.

    The base transformer's features are still computed over the whole sequence, row by row at the
    full width as logprobs does, so the kNN head finds the very neighbours logprobs finds; the
    logits, the n-gram, the kNN search, the cache and the mixing cover the new positions alone
    (for the default fusion at 150 tokens, 10 ms a token against 35 ms for logprobs)."""

    def __init__(self, model: FusedModel) -> None:
        self.model, self.tokens = model, torch.empty(0, dtype=torch.long)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens LongTensor[n] appended to the sequence -> log-probabilities [n, V] in fp32."""
        first = len(self.tokens)
        if first + len(tokens) > self.model.context_length:
            raise ValueError(
                f"the sequence would pass the context of {self.model.context_length} tokens"
            )
        self.tokens = torch.cat([self.tokens, tokens.cpu().long()])
        return self.model.mixture(self.tokens[None], first)[0]


def fit_weights(probs: np.ndarray, iterations: int) -> np.ndarray:
    """EM for mixture weights. probs [N, C]: each part's probability of the true token.

    Weights are floored at WEIGHT_FLOOR so the transformer, the one part that gives every token
    mass, always keeps some: heads fitted to zero on train must not make a validation token impossible.
    """
    weights = np.full(probs.shape[1], 1.0 / probs.shape[1])
    for _ in range(iterations):
        joint = probs * weights
        weights = (joint / joint.sum(axis=1, keepdims=True)).mean(axis=0)
    weights = np.maximum(weights, WEIGHT_FLOOR)
    return weights / weights.sum()


def padded(
    stream: np.ndarray, group: list[tuple[int, int]], eot: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs and targets [B, W] of (start, length) windows, eot-padded, and the mask of real positions."""
    width = max(length for _, length in group)
    inputs = torch.full((len(group), width), eot, dtype=torch.long)
    targets = torch.full((len(group), width), eot, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.bool)
    for row, (start, length) in enumerate(group):
        inputs[row, :length] = torch.from_numpy(stream[start : start + length].astype(np.int64))
        targets[row, :length] = torch.from_numpy(
            stream[start + 1 : start + length + 1].astype(np.int64)
        )
        mask[row, :length] = True
    return inputs, targets, mask


def target_probs(
    model: FusedModel, stream: np.ndarray, eot: int, rows: int
) -> dict[str, np.ndarray]:
    """Each part's probability of every next token of `stream`, in the evaluator's story windows."""
    windows = story_windows(stream, eot, model.context_length)
    picked: dict[str, list[np.ndarray]] = {}
    for first in range(0, len(windows), rows):
        inputs, targets, mask = padded(stream, windows[first : first + rows], eot)
        for name, logs in model.parts(inputs).items():
            chosen = logs.gather(-1, targets[..., None]).squeeze(-1)[mask]
            picked.setdefault(name, []).append(chosen.double().exp().numpy())
    return {name: np.concatenate(chunks) for name, chunks in picked.items()}


def knn_target_probs(
    base: torch.nn.Module,
    knn: KnnHead,
    stream: np.ndarray,
    eot: int,
    rows: int,
    temperatures: tuple[float, ...],
) -> np.ndarray:
    """[N, len(temperatures)]: p_knn of every next token of `stream` (story windows), per temperature."""
    windows = story_windows(stream, eot, base.context_length)
    columns = []
    for first in range(0, len(windows), rows):
        inputs, targets, mask = padded(stream, windows[first : first + rows], eot)
        with torch.inference_mode():
            distances, tokens = knn.neighbours(base.features(inputs).float()[mask])
        hit = tokens == targets[mask][:, None]  # [n, k]: neighbours that predicted the true token
        per_temperature = [
            (knn.weights(distances, tokens, t) * hit).sum(dim=-1) for t in temperatures
        ]
        columns.append(torch.stack(per_temperature, dim=1).double().numpy())
    return np.concatenate(columns)


def pick_temperature(others: np.ndarray, candidates: np.ndarray, iterations: int) -> int:
    """Which column of candidates [N, G] (p_knn per temperature) mixes best with others [N, C]."""
    nats = []
    for column in candidates.T:
        matrix = np.concatenate([others, column[:, None]], axis=1)
        nats.append(-np.log(matrix @ fit_weights(matrix, iterations)).mean())
    return int(np.argmin(nats))


def build_datastore(
    base: torch.nn.Module, stream: np.ndarray, eot: int, config: dict, seed: int
) -> tuple[faiss.Index, np.ndarray]:
    """Hidden states of story windows drawn at random from `stream`, up to knn_memory_mb, indexed."""
    windows = story_windows(stream, eot, base.context_length)
    order = np.random.default_rng(seed).permutation(len(windows))
    with torch.inference_mode():
        dim = base.features(torch.tensor([[eot]])).shape[-1]
    entries = int(
        config["knn_memory_mb"] * 2**20 // (4 * dim + 4 + 8)
    )  # float32 key, int32 token, int64 faiss id
    rows, stored = config["batch_rows"], 0
    keys: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for first in range(0, len(order), rows):
        if stored >= entries:
            break
        inputs, targets, mask = padded(
            stream, [windows[i] for i in order[first : first + rows]], eot
        )
        with torch.inference_mode():
            keys.append(base.features(inputs).float()[mask].numpy())  # [entries in batch, D]
        values.append(targets[mask].numpy().astype(np.int32))
        stored += len(values[-1])
    keys_array = np.ascontiguousarray(np.concatenate(keys)[:entries], dtype=np.float32)
    return make_index(keys_array, config["knn_nprobe"], seed), np.concatenate(values)[:entries]


def make_index(keys: np.ndarray, nprobe: int, seed: int) -> faiss.Index:
    """Exact search for small datastores, else an inverted-file index trained on the keys."""
    dim = keys.shape[1]
    if len(keys) < FLAT_BELOW:
        index = faiss.IndexFlatL2(dim)
    else:
        lists = min(MAX_LISTS, len(keys) // POINTS_PER_LIST)
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
        sample = np.random.default_rng(seed).choice(
            len(keys), size=min(len(keys), lists * POINTS_PER_LIST), replace=False
        )
        index.train(keys[np.sort(sample)])
        index.nprobe = nprobe
    index.add(keys)
    return index


def check_config(config: dict) -> list[str]:
    """The heads to use; UserError (one line) for settings that cannot work."""
    if config["fit_split"] != "train":
        raise UserError(
            f"--set fit_split={config['fit_split']}: the mixture weights are fitted on held-out TRAIN tokens "
            "only; fitting them on validation would leak it into the score the evaluator reports"
        )
    if not config["base_run"]:
        raise UserError(
            "--set base_run=RUN_DIR is required: the folder of a trained transformer run"
        )
    heads = [h for h in config["heads"].split(",") if h]
    unknown = set(heads) - set(HEADS)
    if unknown:
        raise UserError(
            f"--set heads={config['heads']}: unknown head {min(unknown)}; use any of {', '.join(HEADS)}"
        )
    if not 1 <= config["ngram_order"] <= MAX_ORDER:
        raise UserError(
            f"--set ngram_order={config['ngram_order']}: use an order from 1 to {MAX_ORDER}"
        )
    if (
        config["knn_k"] < 1
        or config["knn_temperature"] < 0
        or config["knn_memory_mb"] <= 0
        or config["knn_nprobe"] < 1
    ):
        raise UserError(
            "knn_k, knn_nprobe and knn_memory_mb must be positive, knn_temperature positive or 0 (fit)"
        )
    if not 0 < config["cache_decay"] <= 1:
        raise UserError(f"--set cache_decay={config['cache_decay']}: must lie in (0, 1]")
    if config["fit_tokens"] < 2 or config["batch_rows"] < 1 or config["em_iterations"] < 1:
        raise UserError("fit_tokens, batch_rows and em_iterations must be positive")
    return heads


def load_base(base_run: str, entry: Path) -> torch.nn.Module:
    """The transformer of base_run, loaded by its experiment file; it must expose features and head."""
    try:
        base = load_entry(entry, Path(base_run))
    except ModelRejected as exc:
        raise UserError(f"base run {base_run}: {exc}") from exc
    if not all(callable(getattr(base, name, None)) for name in ("features", "head", "parameters")):
        raise UserError(
            f"base run {base_run}: its model has no features(tokens) and head(features); fuse a transformer run"
        )
    return base


def held_out_start(stream: np.ndarray, fit_tokens: int, eot: int) -> int:
    """Where the held-out tail begins: the first story start in the last fit_tokens tokens."""
    if fit_tokens >= len(stream) // 2:
        raise UserError(
            f"fit_tokens={fit_tokens} is half the train stream ({len(stream)} tokens) or more; lower it"
        )
    tail = len(stream) - fit_tokens
    starts = np.flatnonzero(stream[tail:] == eot)
    if len(starts) == 0:
        raise UserError(f"the last {fit_tokens} train tokens hold no story start; raise fit_tokens")
    return tail + int(starts[0])


def build(experiment: Experiment, heads: list[str]) -> FusionRun:
    """Build the heads on the train stream, fit the weights on its held-out tail, save them."""
    config, out = experiment.config, experiment.out
    base = load_base(config["base_run"], base_entry_path(config))
    split = open_split("train", base.tokenizer)
    eot = split.manifest.eot
    stream = np.asarray(split.tokens)
    cut = held_out_start(stream, config["fit_tokens"], eot)
    ngram = knn = None
    if "ngram" in heads:
        ngram = KneserNey.build(stream[:cut], config["ngram_order"], base.vocab_size, eot=eot)
        ngram.save(out / NGRAM_FILE)
    check_clock(experiment, "building the n-gram head")
    if "knn" in heads:
        index, values = build_datastore(base, stream[:cut], eot, config, experiment.seed)
        faiss.write_index(index, str(out / KNN_INDEX))
        np.save(out / KNN_VALUES, values)
        knn = KnnHead(index, values, config["knn_k"], config["knn_temperature"], base.vocab_size)
    check_clock(experiment, "building the kNN datastore")
    decay = config["cache_decay"] if "cache" in heads else None
    probs = target_probs(
        FusedModel(base, ngram, None, decay, {}), stream[cut:], eot, config["batch_rows"]
    )
    if knn is not None:
        fit_knn_temperature(base, knn, probs, stream[cut:], eot, config)
    names = ["lm", *heads]
    matrix = np.stack([probs[name] for name in names], axis=1)
    weights = fit_weights(matrix, config["em_iterations"])
    check_clock(experiment, "fitting the mixture weights")
    fit_nats = {name: float(-np.log(matrix[:, i]).mean()) for i, name in enumerate(names)}
    fit_nats["mixture"] = float(-np.log(matrix @ weights).mean())
    return FusionRun(
        base_run=str(Path(config["base_run"]).resolve()),
        base_entry=str(base_entry_path(config)),
        base_params=sum(p.numel() for p in base.parameters()),
        heads=heads,
        weights=dict(zip(names, weights.tolist(), strict=False)),
        knn_k=config["knn_k"],
        knn_temperature=knn.temperature if knn else config["knn_temperature"],
        knn_nprobe=config["knn_nprobe"],
        cache_decay=config["cache_decay"],
        fit_tokens=len(stream) - cut,
        fit_nats=fit_nats,
    )


def fit_knn_temperature(
    base: torch.nn.Module,
    knn: KnnHead,
    probs: dict[str, np.ndarray],
    held_out: np.ndarray,
    eot: int,
    config: dict,
) -> None:
    """Set knn.temperature (the knob, or the best of KNN_TEMPERATURES when it is 0) and probs["knn"]."""
    temperatures = (
        KNN_TEMPERATURES if config["knn_temperature"] == 0 else (config["knn_temperature"],)
    )
    candidates = knn_target_probs(base, knn, held_out, eot, config["batch_rows"], temperatures)
    others = np.stack(list(probs.values()), axis=1)
    best = pick_temperature(others, candidates, config["em_iterations"])
    knn.temperature, probs["knn"] = temperatures[best], candidates[:, best]


def base_entry_path(config: dict) -> Path:
    return (
        Path(config["base_entry"]).resolve()
        if config["base_entry"]
        else Path(__file__).resolve().parent / "train.py"
    )


def check_clock(experiment: Experiment, stage: str) -> None:
    if experiment.deadline() < 0:
        raise UserError(
            f"{stage} ran past the {experiment.budget:g} s budget; lower knn_memory_mb or fit_tokens"
        )


def load_model(run_dir: Path) -> FusedModel:
    """The fused model saved in run_dir (the base run must still exist where it was)."""
    run_dir = Path(run_dir)
    try:
        run = FusionRun.model_validate_json((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{run_dir / RUN_FILE} is missing: build first with `python experiments/fusion.py --out {run_dir}`"
        ) from None
    except ValidationError as exc:
        raise UserError(
            validation_error_line(str(run_dir / RUN_FILE), exc) + "; rebuild the run"
        ) from exc
    base = load_base(run.base_run, Path(run.base_entry))
    ngram = KneserNey.load(run_dir / NGRAM_FILE) if "ngram" in run.heads else None
    knn = None
    if "knn" in run.heads:
        index = faiss.read_index(str(run_dir / KNN_INDEX))
        if hasattr(index, "nprobe"):
            index.nprobe = run.knn_nprobe
        knn = KnnHead(
            index, np.load(run_dir / KNN_VALUES), run.knn_k, run.knn_temperature, base.vocab_size
        )
    decay = run.cache_decay if "cache" in run.heads else None
    return FusedModel(base, ngram, knn, decay, run.weights)


def main() -> None:
    experiment = parse_args(CONFIG)
    try:
        heads = check_config(experiment.config)
        torch.manual_seed(experiment.seed)
        run = build(experiment, heads)
        atomic.write_text(experiment.out / RUN_FILE, run.model_dump_json(indent=2) + "\n")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    emit("start", device="cpu", dtype="float32", params=run.base_params, config=experiment.config)
    emit(
        "eval",
        split="train-held-out",
        tokens=run.fit_tokens,
        nats=run.fit_nats,
        weights=run.weights,
    )
    emit(
        "done",
        params=run.base_params,
        steps=0,
        tokens=run.fit_tokens,
        device="cpu",
        dtype="float32",
        elapsed_s=round(experiment.elapsed(), 2),
        weights=run.weights,
    )


if __name__ == "__main__":
    main()
