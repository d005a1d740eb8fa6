"""A realistic ledger for the research tests: a baseline, a kept change and a discarded one."""

from datetime import UTC, datetime, timedelta

from vibe_research.research.state import ledger as L
from vibe_research.research.stats import compare

STORY = (
    "Once upon a time, there was a little girl named Lily. Lily loved to play in the park with her dog, Max. "
    "One day, Max ran after a red ball and got lost. Lily was sad. She looked everywhere for him. "
    "Then she heard a bark behind the big tree. It was Max! Lily hugged him and they went home happy."
)
BAD_STORY = "Once upon a time,, there was a boy named Tim. Tim had a a ball. He played with his his ball ball ball."
DIFF = """--- a/experiments/train.py
+++ b/experiments/train.py
@@ -10,3 +10,3 @@
-D_MODEL = 128  # width
+D_MODEL = 192  # width
"""


def _at(minutes: float) -> datetime:
    return datetime(2026, 11, 27, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def _experiment(
    number: int, title: str, bpbs: list[float], judge: float, clock: float, **proposal
) -> list[L.Record]:
    exp = L.experiment_id(number, title)
    records: list[L.Record] = [
        L.ProposalRecord(
            experiment=exp,
            at=_at(clock),
            title=title,
            hypothesis=f"{title} lowers bpb.",
            **proposal,
        )
    ]
    for seed, bpb in enumerate(bpbs):
        run = f"{exp}-s{seed}"
        curve = [
            L.LossPoint(elapsed_s=10.0 * i, step=50 * i, loss=4.0 * (0.93**i) + bpb)
            for i in range(30)
        ]
        records += [
            L.RunStartRecord(
                experiment=exp,
                at=_at(clock + 1 + seed),
                run=run,
                seed=seed,
                budget_s=300,
                overrides={"lr": "0.003"} if number == 1 else {},
            ),
            L.RunEndRecord(
                experiment=exp,
                at=_at(clock + 6 + seed),
                run=run,
                outcome="ok",
                steps=1500,
                tokens=3_000_000,
                tokens_per_s=10_000.0,
                params=1_800_000,
                device="cpu",
                elapsed_s=298.0,
                loss_curve=curve,
                lm_fingerprint="3f2a9c0d11e4b7a1",
                versions={"python": "3.12.3", "torch": "2.13.0"},
            ),
            L.EvaluationRecord(
                experiment=exp,
                at=_at(clock + 7 + seed),
                run=run,
                bpb=bpb,
                perplexity=8.5 + bpb,
                tokenizer="gpt2",
                samples=[
                    L.Sample(prompt="Once upon a time", seed=0, text=STORY),
                    L.Sample(prompt="Once upon a time", seed=1, text=BAD_STORY),
                ],
            ),
            L.JudgementRecord(
                experiment=exp,
                at=_at(clock + 8 + seed),
                run=run,
                judge="heuristic",
                rubric_version="h1",
                scores=[
                    L.SampleScore(
                        prompt="Once upon a time",
                        seed=0,
                        grammar=judge + 0.1 * seed,
                        creativity=judge - 1,
                        consistency=judge,
                        plot=judge + 1,
                        rationale="Reads cleanly.",
                    )
                ],
            ),
        ]
    return records


def make_records() -> list[L.Record]:
    """Three experiments: the baseline, a change that won (kept, tagged), one that lost (reverted)."""
    base = _experiment(0, "Baseline", [1.30, 1.31, 1.305], 6.0, 0, source="baseline")
    base.append(
        L.DecisionRecord(
            experiment="0000-baseline",
            at=_at(20),
            verdict="baseline",
            kept=True,
            reason="the baseline as it stands",
            tag="best/0000-baseline",
        )
    )
    wide = _experiment(
        1,
        "Wider model",
        [1.20, 1.21, 1.205],
        6.5,
        30,
        source="llm",
        diff=DIFF,
        commit="a" * 40,
        idea="make it wider",
    )
    comparison = compare(
        "both", [1.20, 1.21, 1.205], [1.30, 1.31, 1.305], [6.5, 6.525, 6.55], [6.0, 6.025, 6.05]
    )
    wide += [
        L.DecisionRecord(
            experiment="0001-wider-model",
            at=_at(50),
            verdict=comparison.verdict,
            kept=True,
            against="0000-baseline",
            comparison=comparison,
            reason=comparison.reason,
            commit="b" * 40,
            tag="best/0001-wider-model",
        ),
        L.SuggestionsRecord(
            experiment="0001-wider-model",
            at=_at(51),
            items=[
                L.Suggestion(
                    title="Deeper",
                    idea="4 layers",
                    why="width helped",
                    expected_effect="-0.02 bpb",
                    cost_minutes=20,
                    risk="low",
                ),
                L.Suggestion(
                    title="N-gram teacher",
                    idea="distil from a 4-gram",
                    why="the seed's best idea",
                    expected_effect="-0.05 bpb",
                    cost_minutes=25,
                    risk="medium",
                ),
            ],
        ),
        L.PickRecord(
            experiment="0001-wider-model",
            at=_at(52),
            choice=2,
            title="N-gram teacher",
            idea="distil from a 4-gram",
        ),
    ]
    fusion = _experiment(
        2, "N-gram teacher", [1.25, 1.21, 1.23], 4.0, 60, source="llm", diff=DIFF, commit="c" * 40
    )
    fusion.append(
        L.RunStartRecord(
            experiment="0002-n-gram-teacher",
            at=_at(75),
            run="0002-n-gram-teacher-s3",
            seed=3,
            budget_s=300,
        )
    )
    comparison = compare(
        "both", [1.25, 1.21, 1.23], [1.20, 1.21, 1.205], [4.0, 4.025, 4.05], [6.5, 6.525, 6.55]
    )
    fusion += [
        L.DecisionRecord(
            experiment="0002-n-gram-teacher",
            at=_at(80),
            verdict=comparison.verdict,
            kept=False,
            against="0001-wider-model",
            comparison=comparison,
            reason=comparison.reason,
            commit="d" * 40,
        ),
        L.PickRecord(
            experiment="0002-n-gram-teacher",
            at=_at(81),
            choice=None,
            idea="try shallow fusion at 0.3",
        ),
        L.NoteRecord(
            experiment="0002-n-gram-teacher",
            at=_at(82),
            text="The stories got repetitive; fusion weight too high?",
        ),
        L.OverheadRecord(
            experiment="0002-n-gram-teacher",
            at=_at(83),
            seconds={"proposing": 2.5, "judging": 4.25},
            turn_s=950.0,
        ),
    ]
    return base + wide + fusion


def many_records(experiments: int) -> list[L.Record]:
    """A long ledger: a baseline and `experiments` more, alternately kept and discarded."""
    records = make_records()[:14]
    for number in range(1, experiments + 1):
        bpbs = [1.3 - 0.01 * number + 0.005 * seed for seed in range(3)]
        exp = _experiment(
            number,
            f"Change {number}",
            bpbs,
            5.0 + (number % 3),
            30.0 * number,
            source="offline",
            diff=DIFF,
        )
        kept = number % 2 == 1
        exp.append(
            L.DecisionRecord(
                experiment=exp[0].experiment,
                at=_at(30.0 * number + 20),
                verdict="better" if kept else "worse",
                kept=kept,
                against="0000-baseline",
                reason="synthetic",
            )
        )
        exp.append(
            L.PickRecord(
                experiment=exp[0].experiment,
                at=_at(30.0 * number + 21),
                choice=None,
                idea=f"idea {number}",
            )
        )
        records += exp
    return records
