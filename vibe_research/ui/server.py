"""The dashboard's HTTP server: the standard library's threading server, Jinja2 pages.

Read-only: GET and HEAD only (http.server answers 501 to anything else). Every page is rendered
with autoescaping, since stories, diffs and titles are text a model or an LLM wrote. A Content
Security Policy lets a page load only this server's own stylesheet and script, and the Host check
keeps pages from other sites (DNS rebinding) from reading a loopback dashboard.
"""

import errno
import json
import logging
import re
import socket
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from vibe_research.lm.errors import UserError
from vibe_research.ui import format as fmt
from vibe_research.ui import views
from vibe_research.ui.live import Watcher
from vibe_research.ui.source import Source

log = logging.getLogger(__name__)

STATIC = {"style.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}
EXPERIMENT_PATH = re.compile(r"^/experiments/([0-9]{4,}-[a-z0-9-]+)$")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Answer:
    status: HTTPStatus
    content_type: str
    body: bytes


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("vibe_research.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(num=fmt.num, interval=fmt.interval)
    return env


class Dashboard:
    """Turns a request path into an answer; knows nothing of sockets."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.watcher = Watcher(source)
        self.templates = _environment()

    def answer(self, path: str) -> Answer:
        try:
            return self._route(path)
        except UserError as exc:  # a damaged ledger or settings file: say so, on the page
            if path.startswith("/api/"):
                return self._json({"error": str(exc)}, HTTPStatus.INTERNAL_SERVER_ERROR)
            return self._html("error.html", HTTPStatus.INTERNAL_SERVER_ERROR, message=str(exc))

    def _route(self, path: str) -> Answer:
        if path == "/":
            snapshot = self.source.snapshot()
            return self._html("home.html", page=views.home(snapshot), snapshot=snapshot)
        if match := EXPERIMENT_PATH.match(path):
            snapshot = self.source.snapshot()
            experiment = snapshot.state.experiments.get(match.group(1))
            if experiment is not None:
                return self._html(
                    "experiment.html",
                    page=views.experiment_page(snapshot, experiment),
                    snapshot=snapshot,
                    experiment_id=experiment.id,
                )
        if path == "/api/live":
            return Answer(
                HTTPStatus.OK,
                "application/json",
                self.watcher.view().model_dump_json().encode("utf-8"),
            )
        if path.startswith("/static/") and path.removeprefix("/static/") in STATIC:
            name = path.removeprefix("/static/")
            data = resources.files("vibe_research.ui").joinpath("static", name).read_bytes()
            return Answer(HTTPStatus.OK, STATIC[name], data)
        return self._html("error.html", HTTPStatus.NOT_FOUND, message=f"nothing at {path}")

    def _html(self, template: str, status: HTTPStatus = HTTPStatus.OK, **context) -> Answer:
        text = self.templates.get_template(template).render(**context)
        return Answer(status, "text/html; charset=utf-8", text.encode("utf-8"))

    @staticmethod
    def _json(data: dict, status: HTTPStatus) -> Answer:
        return Answer(status, "application/json", json.dumps(data).encode("utf-8"))


class Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard  # set on the subclass make_server builds
    allowed_hosts: frozenset[str] | None  # None: any (listening on every interface, as asked)
    server_version = "vibe-research-ui"

    def do_GET(self) -> None:
        self._reply(send_body=True)

    def do_HEAD(self) -> None:
        self._reply(send_body=False)

    def _reply(self, send_body: bool) -> None:
        host = self.headers.get("Host", "")
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            answer = Answer(
                HTTPStatus.MISDIRECTED_REQUEST, "text/plain", b"this dashboard answers on localhost"
            )
        else:
            answer = self.dashboard.answer(urlsplit(self.path).path)
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("%s went away before its answer", self.client_address)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    if host in WILDCARDS:
        return None
    names = {host if ":" not in host else f"[{host}]"}
    if host in ("127.0.0.1", "localhost", "::1"):
        names |= set(LOOPBACK_NAMES)
    return frozenset(f"{name}:{port}" for name in names)


def make_server(source: Source, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: a free one); UserError when it cannot listen there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True  # a request in flight does not hold up Ctrl-C

    try:
        server = Server((host, port), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is in use: pass another with --port, or --port 0 for a free one"
            ) from exc
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass an address of this machine with --host"
        ) from exc
    bound_port = server.server_address[1]

    class BoundHandler(Handler):
        dashboard = Dashboard(source)
        allowed_hosts = _allowed_hosts(host, bound_port)

    server.RequestHandlerClass = BoundHandler
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}/"
