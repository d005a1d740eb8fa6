"""`vibe-research ui`: the read-only dashboard of this workspace, served on localhost."""

import logging

import typer

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ui(
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="Port to listen on (0: a free one, chosen at start)."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. Anything but loopback shows your research to whoever can reach it.",
    ),
) -> None:
    """Serve a live dashboard of this workspace: question, best, leaderboard, progress, every experiment (diff, runs, loss curves, statistics, judge, stories) and the runs in progress.

    Read-only, and works offline: it reads notes/ledger.jsonl and the run folders under .vibe/runs, so it can run beside `vibe-research continue` in another terminal, or after it ends. The page refreshes itself. Stop it with Ctrl-C.
    """
    from vibe_research.ui.server import make_server, url_of
    from vibe_research.ui.source import open_workspace

    source = open_workspace()
    server = make_server(source, host, port)
    if host not in LOOPBACK:
        log.warning(
            "listening on %s: anyone who can reach this machine can read the dashboard", host
        )
    print(f"dashboard of {source.workspace.root}: {url_of(server)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command()(ui)
