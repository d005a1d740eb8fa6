"""The live view: the runner's trace in the run folder, and the panel following a real training."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI, Browser, dashboard
from playwright.sync_api import Error as PlaywrightError

from vibe_research.runs.events import LIVE_TRACE, LiveLine, OutputRecorder
from vibe_research.ui.live import Trace, read_new_lines


def test_the_recorder_traces_phases_and_events_into_the_run_folder(tmp_path: Path) -> None:
    seen: list[dict] = []
    recorder = OutputRecorder("r1", lambda run, event: seen.append(event))
    recorder.status(tmp_path, "describe")
    recorder.stdout_line("not an event: a log line\n")
    recorder.status(tmp_path, "train")
    recorder.stdout_line(json.dumps({"event": "start", "device": "cpu", "params": 10}) + "\n")
    for step in (5, 10):  # the second comes at once: thinned out of the trace, not the callback
        recorder.stdout_line(json.dumps({"event": "step", "step": step, "loss": 3.0}) + "\n")
    lines = [
        LiveLine.model_validate_json(line)
        for line in (tmp_path / LIVE_TRACE).read_text(encoding="utf-8").splitlines()
    ]
    assert [line.event for line in lines] == [
        {"event": "status", "phase": "describe"},
        {"event": "status", "phase": "train"},
        {"event": "start", "device": "cpu", "params": 10},
        {"event": "step", "step": 5, "loss": 3.0},
    ]
    assert lines[0].v == 1 and lines[0].t <= lines[-1].t <= time.time()
    assert [event.get("step") for event in seen if event["event"] == "step"] == [5, 10]


def test_a_trace_is_read_as_it_grows_and_a_line_being_written_waits(tmp_path: Path) -> None:
    path = tmp_path / LIVE_TRACE
    phase = LiveLine(t=100.0, event={"event": "status", "phase": "train"}).model_dump_json()
    step = LiveLine(t=101.0, event={"event": "step", "step": 7, "loss": 2.5, "elapsed_s": 1.5})
    path.write_text(phase + "\n" + step.model_dump_json()[:20], encoding="utf-8")
    trace = read_new_lines(path, Trace())
    assert trace.phase == "train" and trace.train_t == 100.0 and trace.step is None
    path.write_text(phase + "\n" + step.model_dump_json() + "\n", encoding="utf-8")
    trace = read_new_lines(path, trace)
    assert (trace.step, trace.loss, trace.curve) == (7, 2.5, [(1.5, 2.5)])
    path.write_text(phase + "\n", encoding="utf-8")  # shorter: a new attempt, read afresh
    assert read_new_lines(path, trace).step is None


ROWS = """() => [...document.querySelectorAll('#live-runs tbody tr')].map((row) => ({
    run: row.dataset.run,
    phase: row.querySelector('[data-phase]').dataset.phase,
    step: row.querySelector('[data-field=step]').textContent,
    left: row.querySelector('[data-field=left]').textContent,
}))"""


def _seconds(clock: str) -> int | None:
    minutes, _, seconds = clock.partition(":")
    return int(minutes) * 60 + int(seconds) if seconds else None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_live_panel_follows_a_tiny_training_as_it_runs(
    tiny_workspace: Path, browser: Browser
) -> None:
    page = browser.page()
    with dashboard(tiny_workspace) as url:
        page.goto(url)
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('No vibe-research continue')"
        )
        research = subprocess.Popen(
            [*CLI, "continue", "--auto", "1"],
            cwd=tiny_workspace,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            observed: dict[str, list[dict]] = {}
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline and research.poll() is None:
                try:
                    rows = page.evaluate(ROWS)
                except PlaywrightError:  # the page reloads when the ledger grows: look again
                    time.sleep(0.3)
                    continue
                for row in rows:
                    observed.setdefault(row["run"], []).append(row)
                done = [
                    run
                    for run, rows in observed.items()
                    if len({r["step"] for r in rows if r["phase"] == "train"}) >= 2
                    and any(r["phase"] in ("evaluate", "finished") for r in rows)
                ]
                if done:
                    break
                time.sleep(0.25)
            assert done, f"never saw a run train and move on; saw {observed}"
            rows = observed[done[0]]
            phases = [r["phase"] for r in rows]
            assert phases.index("train") < max(
                i for i, p in enumerate(phases) if p in ("evaluate", "finished")
            )
            training = [r for r in rows if r["phase"] == "train"]
            steps = [int(r["step"].replace(",", "")) for r in training if r["step"] != "–"]
            assert steps == sorted(steps) and steps[-1] > steps[0]
            left = [_seconds(r["left"]) for r in training if _seconds(r["left"]) is not None]
            assert left[0] > left[-1] and left[0] <= 12
            assert (
                page.locator("#live-status")
                .inner_text()
                .startswith("vibe-research continue is running")
            )
        finally:
            research.send_signal(signal.SIGTERM)  # stops cleanly: the runs are recorded
            research.wait(timeout=120)
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('No vibe-research continue')",
            timeout=30_000,
        )
        page.wait_for_selector("#live-none", state="visible", timeout=30_000)
    browser.assert_only_loopback()
