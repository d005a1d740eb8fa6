"""The pages over this repository's own research log, in a real browser."""

import json
from pathlib import Path

from conftest import Browser, dashboard, rewrite_ledger

from vibe_research.ui.source import open_workspace

DEPTH = "0013-lower-depth-n-layer-2-1"  # a kept train.py change: 3 seeds, a diff, stories


def _ledger(workspace: Path) -> list[dict]:
    path = workspace / "notes" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_home_shows_the_question_the_best_the_leaderboard_and_progress(
    repo_workspace: Path, browser: Browser
) -> None:
    snapshot = open_workspace(repo_workspace).snapshot()
    best = next(row for row in snapshot.rows if row.best)
    page = browser.page()
    with dashboard(repo_workspace) as url:
        page.goto(url)
        assert page.inner_text("#question") == snapshot.settings.research.question
        assert best.experiment in page.inner_text("#best")
        assert f"{best.bpb.mean:.4f}" in page.inner_text("#best")
        rows = page.locator("#leaderboard tbody tr")
        assert rows.count() == len(snapshot.state.experiments)
        depth = page.inner_text(f"#row-{DEPTH}")
        # the depth experiment's three seeds: mean ± half the 95% t interval, and the interval
        assert "0.9615 ± 0.0152" in depth and "[0.9463, 0.9766]" in depth
        assert "better, kept" in depth and "d7cdb45d" in depth
        assert page.locator(f"#row-{best.experiment}.best").count() == 1
        measured = sum(1 for row in snapshot.rows if row.bpb)
        assert page.locator("#progress svg").first.locator(".mark").count() == measured
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('No vibe-research continue')"
        )
        assert "LLM: 0 calls" in page.inner_text("#live-spend")
        page.click(f"#row-{DEPTH} a")
        page.wait_for_url(f"**/experiments/{DEPTH}")
    browser.assert_only_loopback()


def test_an_experiment_page_shows_the_change_runs_verdict_judge_and_stories(
    repo_workspace: Path, browser: Browser
) -> None:
    records = [r for r in _ledger(repo_workspace) if r["experiment"] == DEPTH]
    first_story = next(r for r in records if r["kind"] == "evaluation")["samples"][0]
    compared = next(r for r in records if r["kind"] == "decision")["against"]
    theirs = next(
        r
        for r in _ledger(repo_workspace)
        if r["experiment"] == compared and r["kind"] == "evaluation"
    )["samples"]
    their_story = next(s for s in theirs if s["prompt"] == first_story["prompt"])
    page = browser.page()
    with dashboard(repo_workspace) as url:
        page.goto(f"{url}experiments/{DEPTH}")
        assert page.inner_text("#title") == "13 · Lower depth: n_layer 2 -> 1"
        assert page.inner_text("#verdict-word") == "better, kept"
        added = page.locator("#change pre.diff .add").all_inner_texts()
        removed = page.locator("#change pre.diff .del").all_inner_texts()
        assert any('"n_layer": 1,' in line for line in added)
        assert any('"n_layer": 2,' in line for line in removed)
        statistics = page.inner_text("#statistics")
        assert "Welch t-test, n=3 vs 3" in statistics and compared in statistics
        assert "-0.0224 [-0.0349, -0.0099]" in statistics
        runs = page.inner_text("#runs")
        assert "0.9547" in runs and "1,229,376" in runs
        assert page.locator("#runs tbody tr").count() == 3
        assert page.locator("#runs svg polyline.reference").count() == 3  # the compared seeds
        assert page.locator("#runs svg polyline:not(.reference)").count() == 3
        assert "75% [0.41, 0.93] over 8" in page.inner_text("#judge")
        beginning = page.locator(".beginning").first
        sides = beginning.locator(".side")
        ours, other = sides.nth(0).locator(".story").first, sides.nth(1).locator(".story").first
        assert ours.locator(".text").inner_text() == first_story["text"]
        assert other.locator(".text").inner_text() == their_story["text"]
        assert "Heuristic:" in ours.locator(".rationale").inner_text()
    browser.assert_only_loopback()


HOSTILE = (
    '</p></pre><script>window.__pwned = 1</script><img src="http://203.0.113.9/pixel.png" '
    "onerror=\"window.__pwned = 2\">&amp; 'quoted' <b>not bold</b>"
)


def test_hostile_text_from_models_and_llms_is_shown_as_text(
    repo_workspace: Path, browser: Browser
) -> None:
    def poison(record: dict) -> None:
        if record["experiment"] != DEPTH:
            return
        if record["kind"] == "proposal":
            record["title"] = f"Depth {HOSTILE}"
            record["diff"] = record["diff"].rstrip("\n") + f"\n+{HOSTILE}\n"
        if record["kind"] == "evaluation":
            first = record["samples"][0]
            first["text"] = first["prompt"] + HOSTILE
        if record["kind"] == "judgement":
            record["scores"][0]["rationale"] = HOSTILE
        if record["kind"] == "decision":
            record["reason"] = HOSTILE

    rewrite_ledger(repo_workspace, poison)
    page = browser.page()
    with dashboard(repo_workspace) as url:
        for path in ("", f"experiments/{DEPTH}"):
            page.goto(url + path)
            page.wait_for_timeout(500)  # a poll of the live panel has come and gone
            assert page.evaluate("window.__pwned") is None
            assert page.locator("img").count() == 0
            assert page.locator("b").count() == 0
            assert page.locator("script").count() == 1  # the dashboard's own live.js
        assert page.inner_text("#title") == f"13 · Depth {HOSTILE}"
        assert page.locator(".story .text").first.inner_text().endswith(HOSTILE)
        assert HOSTILE in page.locator("#change pre.diff .add").all_inner_texts()[-1]
        assert HOSTILE in page.inner_text("#statistics")
    browser.assert_only_loopback()
