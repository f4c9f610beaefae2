"""A stand-in for the Hugging Face Hub on 127.0.0.1: the few routes ``huggingface_hub`` uses
to create a dataset repository, commit files to it and download them at a commit.

Routes (read off the client's code: ``hf_api.create_repo``/``create_commit``/``_validate_yaml``,
``_commit_api._fetch_upload_modes``/``_send_commit``, ``file_download.hf_hub_download``)::

    POST /api/repos/create                              -> {"url"}; 409 (and the url) if it exists
    POST /api/validate-yaml                             -> no errors (a README.md is committed)
    POST /api/datasets/ORG/NAME/preupload/REV           -> every file "regular" (inline in the
                                                           commit: no LFS or Xet upload)
    POST /api/datasets/ORG/NAME/commit/REV              -> ndjson in; {"commitOid", "commitUrl"}
    HEAD|GET /datasets/ORG/NAME/resolve/REV/PATH        -> X-Repo-Commit, ETag, Content-Length
    GET  /api/agent-harnesses                           -> an empty registry (newer clients ask)

A commit's sha is derived from its parent and content, so commits are immutable, as on the
Hub. ``requests`` records every request line; ``commit_files`` adds a commit directly (a
later commit whose file no longer matches the manifest, say).

>>> with running_hub() as hub:
...     hub.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from http_fixture import serving_in_a_thread

DEFAULT_BRANCH = "main"
_EMPTY_TREE = "0" * 40


@dataclass
class Repo:
    """One dataset repository: commits (sha -> {path: bytes}) and branches (name -> sha)."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.branches.get(revision)


def git_blob_sha1(data: bytes) -> str:
    """What the Hub's ETag is for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def etag_of(path: str, data: bytes) -> str:
    """An LFS-like sha256 for safetensors files, a git blob sha1 for the others, as the Hub."""
    if path.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return git_blob_sha1(data)


class HubStandIn:
    """The server's state, shared with its handler threads."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self._httpd = httpd
        self.lock = threading.Lock()
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def create(self, repo_id: str) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            self.repos[repo_id] = Repo(
                commits={_EMPTY_TREE: {}}, branches={DEFAULT_BRANCH: _EMPTY_TREE}
            )
            return True

    def commit_files(
        self, repo_id: str, files: dict[str, bytes], *, branch: str = DEFAULT_BRANCH
    ) -> str:
        """Add a commit on ``branch`` that sets ``files``; its sha."""
        with self.lock:
            repo = self.repos[repo_id]
            parent = repo.branches[branch]
            tree = {**repo.commits[parent], **files}
            digest = hashlib.sha1(parent.encode(), usedforsecurity=False)
            for path in sorted(tree):
                digest.update(path.encode() + b"\0" + hashlib.sha256(tree[path]).digest())
            sha = digest.hexdigest()
            repo.commits[sha] = tree
            repo.branches[branch] = sha
            return sha

    def files(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        with self.lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            assert sha is not None, revision
            return dict(repo.commits[sha])

    def downloads(self) -> list[str]:
        """The GET requests of files (``resolve`` routes) so far."""
        with self.lock:
            return [r for r in self.requests if r.startswith("GET ") and "/resolve/" in r]


class _Handler(BaseHTTPRequestHandler):
    state: HubStandIn

    def log_message(self, format: str, *args: object) -> None:
        del format, args

    # -- helpers ------------------------------------------------------------------------

    def _record(self) -> None:
        with self.state.lock:
            self.state.requests.append(f"{self.command} {self.path}")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
        self._answer(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    # -- routes -------------------------------------------------------------------------

    def do_POST(self) -> None:
        self._record()
        path = urllib.parse.urlsplit(self.path).path
        body = self._body()
        if path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}"
            url = f"{self.state.url}/datasets/{repo_id}"
            if not self.state.create(repo_id):  # the Hub names the repository in a 409 too
                message = "You already created this dataset repo"
                self._json(409, {"error": message, "url": url}, {"X-Error-Message": message})
                return
            self._json(200, {"url": url})
            return
        if path == "/api/validate-yaml":
            self._json(200, {"errors": [], "warnings": []})
            return
        parts = path.split("/")  # ['', 'api', 'datasets', ORG, NAME, action, REV]
        if len(parts) == 7 and parts[:3] == ["", "api", "datasets"]:
            repo_id = f"{parts[3]}/{parts[4]}"
            action, revision = parts[5], urllib.parse.unquote(parts[6])
            if repo_id not in self.state.repos:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            if action == "preupload":
                files = json.loads(body)["files"]
                self._json(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ]
                    },
                )
                return
            if action == "commit":
                files: dict[str, bytes] = {}
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        value = item["value"]
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] != "header":
                        self._error(400, "BadRequest", f"the stand-in has no {item['key']}")
                        return
                sha = self.state.commit_files(repo_id, files, branch=revision)
                self._json(
                    200,
                    {
                        "commitOid": sha,
                        "commitUrl": f"{self.state.url}/datasets/{repo_id}/commit/{sha}",
                        "pullRequestUrl": None,
                    },
                )
                return
        self._error(404, "NotFound", f"no route POST {path}")

    def do_HEAD(self) -> None:
        self._resolve()

    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path == "/api/agent-harnesses":
            self._record()
            self._json(200, {"standardEnvVars": [], "harnesses": {}})
            return
        self._resolve()

    def _resolve(self) -> None:
        self._record()
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = path.split("/", 6)  # ['', 'datasets', ORG, NAME, 'resolve', REV, FILE]
        if len(parts) != 7 or parts[1] != "datasets" or parts[4] != "resolve":
            self._error(404, "NotFound", f"no route {self.command} {path}")
            return
        repo_id, revision, filename = f"{parts[2]}/{parts[3]}", parts[5], parts[6]
        with self.state.lock:
            repo = self.state.repos.get(repo_id)
            sha = repo.resolve(revision) if repo is not None else None
            data = repo.commits[sha].get(filename) if repo is not None and sha else None
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        if data is None:
            self._answer(
                404,
                b"Entry not found",
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha},
            )
            return
        self._answer(
            200,
            data,
            {
                "Content-Type": "application/octet-stream",
                "X-Repo-Commit": sha,
                "ETag": f'"{etag_of(filename, data)}"',
            },
        )


@contextmanager
def running_hub() -> Iterator[HubStandIn]:
    """The stand-in on a free port of 127.0.0.1, in a thread; shut down on exit."""
    with serving_in_a_thread(_Handler, HubStandIn) as state:
        yield state
