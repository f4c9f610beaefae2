"""A store server on 127.0.0.1 for the fetch tests: serves bytes, counts GETs, injects faults.

>>> with running_server() as server:  # doctest: +SKIP
...     base = server.serve_store(make_store(tmp_path / "src"), "/store")
...     server.add_fault("/store/pretrained/weights.safetensors", status(500), times=2)
...     materialize(base, tmp_path / "cache")
...     server.count("/store/pretrained/weights.safetensors")
3
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import save_file

from pytest_unlearn.store.manifest import MANIFEST_NAME, Manifest, build_manifest, write_manifest

State = TypeVar("State")


@dataclass(frozen=True)
class Fault:
    """What to do wrong on one request: answer ``code``, flip a byte, cut the body, stall, or
    trickle the body ``keep`` bytes every ``seconds``."""

    kind: str
    code: int = 0
    keep: int = 0
    seconds: float = 0.0


def status(code: int) -> Fault:
    """Answer with this HTTP status instead of the body."""
    return Fault("status", code=code)


def wrong_bytes() -> Fault:
    """Serve the body with one byte flipped (same size, wrong sha256)."""
    return Fault("wrong_bytes")


def truncated(keep: int) -> Fault:
    """Announce the full Content-Length, send only ``keep`` bytes, close the connection."""
    return Fault("truncate", keep=keep)


def slow(seconds: float) -> Fault:
    """Wait ``seconds`` before answering (for timeouts)."""
    return Fault("slow", seconds=seconds)


def trickle(chunk: int, every: float) -> Fault:
    """Answer at once (full Content-Length), then send the body ``chunk`` bytes at a time,
    waiting ``every`` seconds before each: a server that is slow but never silent for long."""
    return Fault("trickle", keep=chunk, seconds=every)


@dataclass
class _Slot:
    fault: Fault
    remaining: int | None  # uses left; None = every request


class StoreServer:
    """State shared with the handler threads: routes, request counts, faults, a global delay."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self._httpd = httpd
        self._lock = threading.Lock()
        self.routes: dict[str, bytes] = {}
        self.counts: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self._faults: dict[str, _Slot] = {}
        self.delay = 0.0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def serve_store(self, root: Path, prefix: str) -> str:
        """Serve every file under ``root`` at ``prefix/<relative path>``; return the base URL."""
        for path in root.rglob("*"):
            if path.is_file():
                self.routes[f"{prefix}/{path.relative_to(root).as_posix()}"] = path.read_bytes()
        return self.url + prefix

    def add_fault(self, path: str, fault: Fault, *, times: int | None = None) -> None:
        """Apply ``fault`` to the next ``times`` GETs of ``path`` (all of them if None)."""
        with self._lock:
            self._faults[path] = _Slot(fault, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, path: str) -> int:
        """GETs of ``path`` so far."""
        with self._lock:
            return self.counts[path]

    def data_counts(self, prefix: str) -> dict[str, int]:
        """GETs per data file under ``prefix`` (the manifest excluded), zeros included."""
        with self._lock:
            return {
                path: self.counts[path]
                for path in self.routes
                if path.startswith(prefix + "/") and not path.endswith("/" + MANIFEST_NAME)
            }

    def _take(self, path: str, user_agent: str) -> tuple[Fault | None, bytes | None]:
        with self._lock:
            self.counts[path] += 1
            self.user_agents.append(user_agent)
            body = self.routes.get(path)
            slot = self._faults.get(path)
            if slot is None:
                return None, body
            if slot.remaining is not None:
                if slot.remaining <= 0:
                    return None, body
                slot.remaining -= 1
            return slot.fault, body


class _Handler(BaseHTTPRequestHandler):
    state: StoreServer  # set on a subclass per server

    def do_GET(self) -> None:
        fault, body = self.state._take(self.path, self.headers.get("User-Agent", ""))
        if self.state.delay:
            time.sleep(self.state.delay)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            self.send_error(fault.code)
            return
        if body is None:
            self.send_error(404)
            return
        announced = len(body)
        if fault is not None and fault.kind == "wrong_bytes":
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        if fault is not None and fault.kind == "truncate":
            body = body[: fault.keep]
            # The client must see EOF right after the short body.
            self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        # The client may have given up already (the timeout and stall tests).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if fault is not None and fault.kind == "trickle":
                self.wfile.flush()
                for start in range(0, len(body), fault.keep):
                    time.sleep(fault.seconds)
                    self.wfile.write(body[start : start + fault.keep])
                    self.wfile.flush()
            else:
                self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args  # keep test output quiet


@contextmanager
def serving_in_a_thread(
    handler: type[BaseHTTPRequestHandler], make_state: Callable[[ThreadingHTTPServer], State]
) -> Iterator[State]:
    """``handler`` served on a free port of 127.0.0.1 in a thread, shut down on exit; the
    handler class (a fresh subclass per server) sees ``make_state(server)`` as ``state``."""
    handler = type("Handler", (handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state = make_state(httpd)
    handler.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextmanager
def running_server() -> Iterator[StoreServer]:
    """A ThreadingHTTPServer on 127.0.0.1 (free port) in a thread, shut down on exit."""
    with serving_in_a_thread(_Handler, StoreServer) as state:
        yield state


def unused_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/store"


def make_store(root: Path) -> Manifest:
    """A tiny store under ``root``: four small safetensors files and their manifest."""
    generator = torch.Generator().manual_seed(0)
    files = {
        "pretrained/weights.safetensors": {"w": torch.randn(8, 16, generator=generator)},
        "pretrained/margins.safetensors": {"margins": torch.randn(8, 40, generator=generator)},
        "oracles/knn36.safetensors": {
            "half_a": torch.randn(8, 40, generator=generator),
            "half_b": torch.randn(8, 40, generator=generator),
        },
        "forget_sets/knn36.safetensors": {"indices": torch.arange(36, dtype=torch.int64)},
    }
    for rel, tensors in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(root / rel))
    manifest = build_manifest(
        root,
        benchmark="tiny-mlp",
        fingerprint="0123456789abcdef",
        n_models=8,
        recipe={"epochs": 2, "lr": 0.1, "hidden": [16]},
        forget_sets={"knn36": "subpopulation"},
    )
    write_manifest(root, manifest)
    return manifest


def light_import_code() -> str:
    """Python source that makes ``pytest_unlearn.store.fetch`` importable without torch.

    The package ``__init__`` files import torch (about 2 s a process); child processes in the
    concurrency tests need only the stdlib-and-filelock fetch module, so they register bare
    package objects pointing at the real folders and import the real modules from there.
    """
    import pytest_unlearn

    package = Path(pytest_unlearn.__file__).parent
    return (
        "import sys, types\n"
        f"for _name, _path in (('pytest_unlearn', {str(package)!r}),"
        f" ('pytest_unlearn.store', {str(package / 'store')!r})):\n"
        "    _module = types.ModuleType(_name)\n"
        "    _module.__path__ = [_path]\n"
        "    sys.modules.setdefault(_name, _module)\n"
    )
