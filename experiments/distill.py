"""Distillation from an n-gram teacher: the student's first steps learn a Kneser-Ney model's guesses.

The seed's best stories came from this: count an n-gram model in seconds, then pull the
transformer toward its next-token distributions for the first 200 steps (grammar for free),
then train on the data alone. train.py imports `build_teacher` and `distill_loss` when
`distill_steps` > 0, builds the teacher inside the run's budget and logs `distill_loss`.
"""

import numpy as np
import torch
import torch.nn.functional as F

from vibe_research.lm.ngram import KneserNey

TOP_K_ABOVE = 8192  # vocabularies larger than this use the top-k KL (gpt2's 50257 does)
TOP_K = 64  # teacher tokens per position kept by the top-k KL


class Teacher:
    """Next-token distributions of a Kneser-Ney model for every position of a batch."""

    def __init__(self, model: KneserNey) -> None:
        self.model = model

    def targets(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs LongTensor[B, T] -> FloatTensor[B, T, V] on the inputs' device.

        Entry [b, t] is the teacher's p(next token | inputs[b, :t+1]); each row of the batch is
        read as a stream from its first token (a window that opens on eot starts a story).
        """
        probs = self.model.next_token_distributions(inputs.cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(probs).to(inputs.device)


def build_teacher(
    train_tokens: np.ndarray, vocab_size: int, order: int, eot: int | None = None
) -> Teacher:
    """Count the teacher from the train stream. eot defaults to the stream's first token, which
    the token caches' layout (`[eot] story [eot] ...`) makes the end-of-story token."""
    tokens = np.asarray(train_tokens)
    return Teacher(
        KneserNey.build(tokens, order, vocab_size, eot=int(tokens[0]) if eot is None else eot)
    )


def distill_loss(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, top_k: int | None = None
) -> torch.Tensor:
    """KL(teacher || student) in nats, the mean over positions. logits and probs: [B, T, V].

    top_k: compare on the teacher's k most likely tokens only (renormalised), the student's
    log-probabilities still normalised over the whole vocabulary. None picks TOP_K where the
    vocabulary is larger than TOP_K_ABOVE, else the full KL.
    """
    vocab = student_logits.shape[-1]
    k = top_k if top_k is not None else (TOP_K if vocab > TOP_K_ABOVE else None)
    student = F.log_softmax(student_logits.float(), dim=-1)
    teacher = teacher_probs.float()
    if k is not None and k < vocab:
        teacher, index = teacher.topk(k, dim=-1)
        teacher = teacher / teacher.sum(dim=-1, keepdim=True)
        student = student.gather(-1, index)
    # xlogy: 0 log 0 = 0 where the teacher gives a token no mass.
    kl = torch.special.xlogy(teacher, teacher) - teacher * student
    return kl.sum(dim=-1).mean()
