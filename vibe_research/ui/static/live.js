"use strict";
// The live panel: polls /api/live and redraws the runs in progress, the LLM spend and what the
// loop works on; reloads the page when the ledger records something the page shows. Every text
// goes in through textContent, never as markup: run ids, titles and reasons are text that the
// loop, an LLM and the trainers wrote.
(function () {
  const POLL_MS = 1500;
  const SVG = "http://www.w3.org/2000/svg";
  const PHASES = {
    queued: "queued",
    remote: "on a Ray worker (no live trace here)",
    describe: "describe",
    train: "train",
    evaluate: "evaluate",
    finished: "finished",
    stopped: "stopped: no continue is running",
  };
  const panel = document.getElementById("live");
  if (!panel) return;
  const status = document.getElementById("live-status");
  const spend = document.getElementById("live-spend");
  const table = document.getElementById("live-runs");
  const none = document.getElementById("live-none");
  const experiment = panel.dataset.experiment;

  function fixed(value, digits) {
    if (value === null || value === undefined) return "–";
    return value.toLocaleString("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  function clock(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const whole = Math.max(0, Math.round(seconds));
    const minutes = Math.floor(whole / 60);
    return minutes + ":" + String(whole % 60).padStart(2, "0");
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "n";
    row.appendChild(td);
    return td;
  }

  function sparkline(points) {
    const width = 160, height = 32;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("class", "spark");
    if (points.length < 2) return svg;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1;
    const y0 = Math.min(...ys), y1 = Math.max(...ys);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.map((p) => {
      const x = x1 > x0 ? ((p[0] - x0) / (x1 - x0)) * (width - 2) + 1 : 1;
      const y = y1 > y0 ? height - 2 - ((p[1] - y0) / (y1 - y0)) * (height - 4) : height / 2;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    svg.appendChild(line);
    return svg;
  }

  function runRow(run) {
    const row = document.createElement("tr");
    row.dataset.run = run.run;
    const where = cell(row, "");
    const link = document.createElement("a");
    link.href = "/experiments/" + encodeURIComponent(run.experiment);
    link.textContent = run.experiment.split("-", 1)[0] + " " + run.title;
    where.appendChild(link);
    cell(row, run.run + " · seed " + run.seed + (run.setting ? " · " + run.setting : ""));
    const phase = cell(row, run.phase === "finished"
      ? "finished: " + run.outcome + (run.reason ? " (" + run.reason + ")" : "")
      : PHASES[run.phase]);
    phase.className = "phase " + run.phase;
    phase.dataset.phase = run.phase;
    cell(row, fixed(run.step, 0), true).dataset.field = "step";
    cell(row, fixed(run.loss, 3), true).dataset.field = "loss";
    cell(row, fixed(run.tokens_per_s, 0), true);
    cell(row, clock(run.train_s), true);
    cell(row, run.left_s === null ? "–" : clock(run.left_s), true).dataset.field = "left";
    cell(row, "").appendChild(sparkline(run.curve));
    return row;
  }

  function render(live) {
    const seen = experiment
      ? live.records_by_experiment[experiment] || 0
      : live.records;
    const shown = Number(experiment ? panel.dataset.experimentRecords : panel.dataset.records);
    if (seen !== shown) {
      location.reload();
      return;
    }
    status.className = "status";
    if (live.continue_pid === null) {
      status.textContent = "No vibe-research continue is running in this workspace.";
    } else {
      status.textContent = "vibe-research continue is running (pid " + live.continue_pid + ")" +
        (live.working ? ", on " + live.working.experiment + ": " + live.working.title : "") + ".";
    }
    spend.textContent = live.spend.summary +
      (live.spend.max_usd === null ? "" : " of $" + fixed(live.spend.max_usd, 2) + " allowed");
    const body = table.tBodies[0];
    body.replaceChildren(...live.runs.map(runRow));
    table.hidden = live.runs.length === 0;
    none.hidden = live.runs.length !== 0;
  }

  async function poll() {
    try {
      const answer = await fetch("/api/live", { cache: "no-store" });
      const data = await answer.json();
      if (answer.ok) {
        render(data);
      } else {
        status.className = "status error";
        status.textContent = data.error;
      }
    } catch (error) {
      status.className = "status error";
      status.textContent = "The dashboard server is not answering (" + error.message + ").";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
