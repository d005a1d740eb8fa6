"""Run events: JSON lines on stdout, parsed back by the runner."""

import subprocess
import sys

import numpy as np
import pytest

from vibe_research.lm.events import emit, parse_event


def test_emit_writes_one_json_line(capsys: pytest.CaptureFixture) -> None:
    emit("step", step=np.int64(3), loss=np.float32(2.5), tokens=4096)
    line = capsys.readouterr().out
    assert line.endswith("\n") and line.count("\n") == 1
    event = parse_event(line)
    assert event is not None and event.event == "step"
    assert event.model_dump() == {"event": "step", "step": 3, "loss": 2.5, "tokens": 4096}


def test_unknown_events_and_unserialisable_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown run event"):
        emit("progress", step=1)
    with pytest.raises(TypeError, match="not JSON"):
        emit("step", model=object())


@pytest.mark.parametrize(
    "line", ["loss 2.5 at step 3", "{not json", '{"event": "party"}', "[1, 2]", ""]
)
def test_other_lines_are_log_text(line: str) -> None:
    assert parse_event(line) is None


def test_events_arrive_unbuffered_through_a_pipe() -> None:
    code = "from vibe_research.lm.events import emit\nemit('start', device='cpu')\nimport time\ntime.sleep(30)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        event = parse_event(
            process.stdout.readline()
        )  # would block for 30 s if the line sat in a buffer
        assert event is not None and event.model_dump() == {"event": "start", "device": "cpu"}
    finally:
        process.kill()
        process.wait()
