"""Broken answers, chosen by run_dir/mode: nan (one NaN among the log-probabilities), shape (one vocabulary
entry too many), ints (an integer tensor), sleeps (never answers), exits (the process ends
mid-request), segfaults (it crashes), garbage (load_model writes junk on its own socket)."""

import ctypes
import os
import socket
import stat
import time
from pathlib import Path

import torch
from bigram import Bigram


class Misbehaving(Bigram):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        honest = super().logprobs(tokens)
        if self.mode == "nan":
            honest = honest.clone()
            honest[-1, 0, 7] = float("nan")
        if self.mode == "shape":
            return torch.cat([honest, honest[..., :1]], dim=-1)
        if self.mode == "ints":
            return honest.long()
        if self.mode == "sleeps":
            time.sleep(3600)
        if self.mode == "exits":
            os._exit(7)
        if self.mode == "segfaults":
            ctypes.string_at(0)
        return honest


def write_garbage() -> None:
    """Junk on every socket this process holds (the session's, in the model process)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                socket.socket(fileno=os.dup(fd)).sendall(b"\xff\xff\xff\x7fnot a frame")
        except OSError:
            continue


def load_model(run_dir: Path) -> Misbehaving:
    mode = (Path(run_dir) / "mode").read_text().strip()
    if mode == "garbage":
        write_garbage()
    return Misbehaving(mode)
