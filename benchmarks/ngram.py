"""Kneser-Ney speed: build times of orders 2-6, counting throughput, and queries per second.

    .venv/bin/python benchmarks/ngram.py [--tokenizer bpe:4096] [--cache-dir DIR]
        [--synthetic-tokens 20000000] [--repeats 3] [--json]

Runs on the shared train tokens (the token cache `vibe-research data prepare` writes; run it from
a workspace or pass --cache-dir) and on synthetic stories of --synthetic-tokens tokens. Targets
(issue 4): a 5-gram on the shared train tokens in under 5 s; counting at 10M tokens/s or more.
Every time is the median of --repeats runs. `sort_floor_s`, np.sort of as many int64 as there
are tokens, is measured in the same run: a shared or loaded machine shows up there first.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from vibe_research.lm.errors import UserError
from vibe_research.lm.ngram import PAD, KneserNey, count_ngrams
from vibe_research.lm.tokenizer import load_tokenizer
from vibe_research.lm.tokens import open_split

ORDERS = (2, 3, 4, 5, 6)
QUERY_ORDER = 5  # the model the query speeds are measured on
QUERY_ROWS = 2048  # contexts per distributions() call
SYNTHETIC_VOCAB = 4096
PHRASES = (
    50_000  # synthetic text: Zipf-distributed phrases of 2-8 tokens, so n-grams repeat as in text
)
STORY_TOKENS = 200  # mean synthetic story length; eot closes each story


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_stream(tokens: int, vocab_size: int, seed: int = 0) -> np.ndarray:
    """int64[tokens]: `[eot] ...` made of phrases drawn Zipf-wise from a fixed random phrase book."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=PHRASES)
    book = rng.integers(0, vocab_size - 1, size=int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    zipf = 1.0 / np.arange(1, PHRASES + 1)
    picks = rng.choice(PHRASES, size=tokens // 4 + 1, p=zipf / zipf.sum())
    sizes = lengths[picks]
    offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    stream = book[np.repeat(starts[picks], sizes) + offsets][:tokens]
    stream[rng.random(tokens) < 1 / STORY_TOKENS] = vocab_size - 1
    stream[0] = vocab_size - 1
    return stream


def bench_stream(name: str, stream: np.ndarray, vocab_size: int, eot: int, repeats: int) -> dict:
    """Build and counting times of every order on one token stream."""
    unsorted = np.random.default_rng(0).integers(0, 1 << 40, len(stream))
    floor = median_seconds(lambda: np.sort(unsorted), repeats)
    rows = []
    for order in ORDERS:
        build = median_seconds(
            partial(KneserNey.build, stream, order, vocab_size, eot=eot), repeats
        )
        count = median_seconds(partial(count_ngrams, stream, order, vocab_size, eot), repeats)
        model = KneserNey.build(stream, order, vocab_size, eot=eot)
        rows.append(
            {
                "order": order,
                "build_s": build,
                "count_s": count,
                "ngrams": sum(model.ngram_counts()),
                # each order above 1 is one counting pass over the stream
                "count_tokens_per_s": len(stream) * (order - 1) / count,
            }
        )
    return {
        "stream": name,
        "tokens": len(stream),
        "vocab_size": vocab_size,
        "sort_floor_s": floor,
        "orders": rows,
    }


def bench_queries(
    train: np.ndarray, valid: np.ndarray, vocab_size: int, eot: int, repeats: int
) -> dict:
    """Full-distribution rows per second and scored stream tokens per second of a 5-gram, after a warm-up call."""
    model = KneserNey.build(train, QUERY_ORDER, vocab_size, eot=eot)
    width = QUERY_ORDER - 1
    padded = np.concatenate((np.full(width, PAD), valid))
    contexts = np.lib.stride_tricks.sliding_window_view(padded, width)[1 : QUERY_ROWS + 1]
    for dtype in (
        np.float64,
        np.float32,
    ):  # warm-up: builds the one-token-context tables, maps the memory
        model.distributions(contexts, dtype=dtype)
    dists = median_seconds(lambda: model.distributions(contexts), repeats)
    dists32 = median_seconds(lambda: model.distributions(contexts, dtype=np.float32), repeats)
    stream = median_seconds(lambda: model.logprob_stream(valid), repeats)
    return {
        "order": QUERY_ORDER,
        "vocab_size": vocab_size,
        "rows": len(contexts),
        "distributions_rows_per_s": len(contexts) / dists,
        "distributions_float32_rows_per_s": len(contexts) / dists32,
        "logprob_stream_tokens_per_s": len(valid) / stream,
    }


def render(results: dict) -> str:
    lines = []
    for bench in results["streams"]:
        lines.append(
            f"{bench['stream']}: {bench['tokens']:,} tokens, V={bench['vocab_size']}, "
            f"sort floor {bench['sort_floor_s']:.3f} s"
        )
        lines.append("  order  build_s  count_s  count Mtok/s   n-grams")
        for row in bench["orders"]:
            lines.append(
                f"  {row['order']:>5}  {row['build_s']:7.2f}  {row['count_s']:7.2f}  "
                f"{row['count_tokens_per_s'] / 1e6:12.1f}  {row['ngrams']:>9,}"
            )
    q = results["queries"]
    lines.append(
        f"queries ({q['order']}-gram, V={q['vocab_size']}, {q['rows']} rows per call): "
        f"distributions {q['distributions_rows_per_s']:,.0f} rows/s "
        f"(float32 {q['distributions_float32_rows_per_s']:,.0f}), "
        f"logprob_stream {q['logprob_stream_tokens_per_s']:,.0f} tokens/s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tokenizer", default="bpe:4096", help="token cache of the shared train tokens"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="token cache folder (default: the workspace's)"
    )
    parser.add_argument("--synthetic-tokens", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        tokenizer = load_tokenizer(args.tokenizer, args.cache_dir)
        train = np.asarray(
            open_split("train", args.tokenizer, args.cache_dir).tokens, dtype=np.int64
        )
        valid = np.asarray(
            open_split("valid", args.tokenizer, args.cache_dir).tokens, dtype=np.int64
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shared = bench_stream(
        f"shared train ({args.tokenizer})", train, tokenizer.vocab_size, tokenizer.eot, args.repeats
    )
    synthetic = synthetic_stream(args.synthetic_tokens, SYNTHETIC_VOCAB)
    generated = bench_stream(
        "synthetic", synthetic, SYNTHETIC_VOCAB, SYNTHETIC_VOCAB - 1, args.repeats
    )
    queries = bench_queries(train, valid, tokenizer.vocab_size, tokenizer.eot, args.repeats)
    results = {"streams": [shared, generated], "queries": queries}
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
