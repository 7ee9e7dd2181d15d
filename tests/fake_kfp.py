"""A small fake of the Kubeflow Pipelines REST API (``/apis/v2beta1``), enough for the real ``kfp.Client``.

No Kubernetes runs here, so the tests drive the real client against this server: healthz, pipelines and their
versions (multipart upload, list, get), experiments (create, list, get), runs (create, get, list, terminate) and
recurring runs (create, list, get, enable, disable, delete). Every request is recorded with its headers
(``Authorization``, ``Cookie``) and body; requests it does not know are answered 501 and listed in ``unknown``.

Run states are scripted: :meth:`FakeKfp.script_next_run` queues the answers the *next* created run gives to
successive GETs (the last one repeats): ``{"state": "RUNNING", "tasks": {name: state | (state, error)}}``. Task
details come back as KFP reports them: with KFP's own ``root`` DAG and ``<task>-driver`` entries beside the tasks,
and a pod name per task. Without a script a run succeeds on its second GET, every task of the spec's root DAG
reported.

``require_token`` makes the server answer 401 to requests without ``Authorization: Bearer <that token>``.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from fake_http import LocalHTTPServer, QuietHandler

API = "/apis/v2beta1"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _display_filter(query: dict[str, list[str]]) -> str | None:
    """The ``display_name EQUALS x`` predicate kfp.Client sends to look things up by name."""
    raw = (query.get("filter") or [""])[0]
    if not raw:
        return None
    for predicate in json.loads(raw).get("predicates", []):
        if predicate.get("key") in ("display_name", "name"):
            return str(predicate.get("stringValue") or predicate.get("string_value"))
    return None


class FakeKfp(LocalHTTPServer):
    """The server's state; :meth:`start` it, always :meth:`stop` it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.unknown: list[str] = []
        self.require_token: str | None = None
        #: the installation's version, as the health endpoint's `tag_name` says it (KFP's env TAG_NAME)
        self.tag_name = "2.14.0"
        self.experiments: dict[str, dict[str, Any]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.uploads: list[dict[str, Any]] = []  # {"pipeline_id", "version_id", "spec", "query"}
        self.runs: dict[str, dict[str, Any]] = {}
        self.run_scripts: dict[str, deque[dict[str, Any]]] = {}
        self.next_scripts: deque[list[dict[str, Any]]] = deque()
        self.recurring: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    # ---- test API ------------------------------------------------------------------------------------------

    def start(self) -> FakeKfp:
        self.serve(self._handler())
        return self

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.unknown.clear()
            self.next_scripts.clear()
            self.require_token = None

    def script_next_run(self, *answers: dict[str, Any]) -> None:
        self.next_scripts.append(list(answers))

    def requests_to(self, method: str, path_pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(path_pattern, r["path"])]

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    # ---- the API ---------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, code: int, body: Any = None, content_type: str = "application/json") -> None:
                data = (json.dumps(body) if content_type == "application/json" else str(body or "")).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                record = {
                    "method": method,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "headers": {k.title(): v for k, v in self.headers.items()},
                    "body": raw,
                }
                with fake.lock:
                    fake.requests.append(record)
                if fake.require_token and self.headers.get("Authorization") != f"Bearer {fake.require_token}":
                    self._reply(401, {"error": "unauthenticated", "code": 16, "message": "missing or bad token"})
                    return
                if url.path in ("", "/"):
                    self._reply(200, "<html><body>Kubeflow Pipelines</body></html>", "text/html")
                    return
                try:
                    with fake.lock:
                        code, body = fake.route(method, url.path, record["query"], raw, self.headers)
                except KeyError as exc:
                    code, body = 404, {"error": f"not found: {exc}", "code": 5, "message": f"not found: {exc}"}
                self._reply(code, body)

        return Handler

    def route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes, headers: Any) -> tuple[int, Any]:
        if not path.startswith(API):
            return self._unknown(method, path)
        rest = path[len(API) :]
        if method == "GET" and rest == "/healthz":
            return 200, {"commit_sha": "fake", "tag_name": self.tag_name, "multi_user": False}
        if rest.startswith("/experiments"):
            return self._experiments(method, rest, query, raw)
        if rest.startswith("/pipelines"):
            return self._pipelines(method, rest, query, raw, headers)
        if rest.startswith("/recurringruns"):
            return self._recurring(method, rest, query, raw)
        if rest.startswith("/runs"):
            return self._runs(method, rest, query, raw)
        return self._unknown(method, path)

    def _unknown(self, method: str, path: str) -> tuple[int, Any]:
        self.unknown.append(f"{method} {path}")
        return 501, {"error": "not implemented by the fake", "code": 12, "message": f"{method} {path}"}

    def _experiments(self, method: str, rest: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        if method == "POST" and rest == "/experiments":
            body = json.loads(raw)
            experiment_id = self.new_id("experiment")
            self.experiments[experiment_id] = {
                "experiment_id": experiment_id,
                "display_name": body["display_name"],
                "description": body.get("description") or "",
                "namespace": body.get("namespace") or "",
                "created_at": _now(),
                "storage_state": "AVAILABLE",
            }
            return 200, self.experiments[experiment_id]
        if method == "GET" and rest == "/experiments":
            name = _display_filter(query)
            found = [e for e in self.experiments.values() if name is None or e["display_name"] == name]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if method == "GET":
            return 200, self.experiments[rest.rsplit("/", 1)[1]]
        return self._unknown(method, rest)

    def _pipelines(
        self, method: str, rest: str, query: dict[str, list[str]], raw: bytes, headers: Any
    ) -> tuple[int, Any]:
        if method == "POST" and rest in ("/pipelines/upload", "/pipelines/upload_version"):
            spec = _uploaded_spec(raw, headers.get("Content-Type", ""))
            name = (query.get("name") or query.get("display_name") or [""])[0]
            if rest.endswith("/upload"):
                if any(p["display_name"] == name for p in self.pipelines.values()):
                    return 409, {"error": "exists", "code": 6, "message": f"pipeline {name} already exists"}
                pipeline_id = self.new_id("pipeline")
                self.pipelines[pipeline_id] = {
                    "pipeline_id": pipeline_id,
                    "display_name": name,
                    "created_at": _now(),
                    "description": (query.get("description") or [""])[0],
                    "namespace": (query.get("namespace") or [""])[0],
                }
                version = self._add_version(pipeline_id, name, spec, query)
                return 200, self.pipelines[pipeline_id]
            pipeline_id = (query.get("pipelineid") or [""])[0]
            self.pipelines[pipeline_id]
            if any(v["display_name"] == name for v in self.versions[pipeline_id]):
                return 409, {"error": "exists", "code": 6, "message": f"version {name} already exists"}
            version = self._add_version(pipeline_id, name, spec, query)
            return 200, version
        if method == "GET" and rest == "/pipelines":
            name = _display_filter(query)
            found = [p for p in self.pipelines.values() if name is None or p["display_name"] == name]
            return 200, {"pipelines": found, "total_size": len(found)} if found else {}
        match = re.fullmatch(r"/pipelines/([^/]+)(/versions)?", rest)
        if method == "GET" and match:
            pipeline = self.pipelines[match.group(1)]
            if not match.group(2):
                return 200, pipeline
            versions = sorted(
                self.versions[match.group(1)],
                key=lambda v: v["created_at"] + v["pipeline_version_id"],
                reverse="desc" in (query.get("sort_by") or [""])[0],
            )
            size = int((query.get("page_size") or ["10"])[0])
            return 200, {"pipeline_versions": versions[:size], "total_size": len(versions)}
        return self._unknown(method, rest)

    def _add_version(
        self, pipeline_id: str, name: str, spec: dict[str, Any], query: dict[str, list[str]]
    ) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self.new_id("version"),
            "display_name": name,
            "description": (query.get("description") or [""])[0],
            "created_at": _now(),
            "pipeline_spec": spec,
        }
        self.versions.setdefault(pipeline_id, []).append(version)
        self.uploads.append(
            {"pipeline_id": pipeline_id, "version_id": version["pipeline_version_id"], "spec": spec, "query": query}
        )
        return version

    def _runs(self, method: str, rest: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        if method == "POST" and rest == "/runs":
            body = json.loads(raw)
            run_id = self.new_id("run")
            run = {**body, "run_id": run_id, "state": "PENDING", "created_at": _now(), "storage_state": "AVAILABLE"}
            self.runs[run_id] = run
            script = self.next_scripts.popleft() if self.next_scripts else _default_script(body.get("pipeline_spec"))
            self.run_scripts[run_id] = deque(script)
            return 200, run
        if method == "GET" and rest == "/runs":
            runs = sorted(self.runs.values(), key=lambda r: r["run_id"], reverse=True)
            size = int((query.get("page_size") or ["10"])[0])
            return 200, {"runs": [self._public(r) for r in runs[:size]], "total_size": len(runs)}
        match = re.fullmatch(r"/runs/([^/:]+)(:terminate)?", rest)
        if match and method == "POST" and match.group(2):
            self.runs[match.group(1)]["terminated"] = True
            self.run_scripts[match.group(1)] = deque([{"state": "CANCELED"}])
            return 200, {}
        if match and method == "GET":
            run = self.runs[match.group(1)]
            script = self.run_scripts[match.group(1)]
            answer = script.popleft() if len(script) > 1 else script[0]
            run["state"] = answer["state"]
            run["run_details"] = {"task_details": _task_details(match.group(1), answer.get("tasks") or {})}
            if answer.get("error"):
                run["error"] = {"code": 2, "message": answer["error"]}
            return 200, self._public(run)
        return self._unknown(method, rest)

    @staticmethod
    def _public(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if k != "terminated"}

    def _recurring(self, method: str, rest: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        if method == "POST" and rest == "/recurringruns":
            body = json.loads(raw)
            recurring_id = self.new_id("recurring")
            self.recurring[recurring_id] = {
                **body,
                "recurring_run_id": recurring_id,
                "created_at": _now(),
                "status": "ENABLED" if body.get("mode") != "DISABLE" else "DISABLED",
            }
            return 200, self.recurring[recurring_id]
        if method == "GET" and rest == "/recurringruns":
            found = list(self.recurring.values())
            return 200, {"recurringRuns": found, "total_size": len(found)} if found else {}
        match = re.fullmatch(r"/recurringruns/([^/:]+)(:enable|:disable)?", rest)
        if match and method == "POST" and match.group(2):
            self.recurring[match.group(1)]["status"] = "ENABLED" if match.group(2) == ":enable" else "DISABLED"
            return 200, {}
        if match and method == "DELETE":
            del self.recurring[match.group(1)]
            return 200, {}
        if match and method == "GET":
            return 200, self.recurring[match.group(1)]
        return self._unknown(method, rest)


def _uploaded_spec(raw: bytes, content_type: str) -> dict[str, Any]:
    """The pipeline file of a ``multipart/form-data`` upload (field ``uploadfile``), parsed."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            # KFP's package: the PipelineSpec, then (pod settings) the Kubernetes platform spec, as KFP stores them
            documents = list(yaml.safe_load_all(part.get_payload(decode=True)))
            if len(documents) == 1:
                return documents[0]
            return {"pipeline_spec": documents[0], "platform_spec": documents[1]}
    raise KeyError("uploadfile")


def _default_script(spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    if spec and "platform_spec" in spec:  # a run with a Kubernetes platform spec: {pipeline_spec, platform_spec}
        spec = spec["pipeline_spec"]
    tasks = list(((spec or {}).get("root") or {}).get("dag", {}).get("tasks", {}))
    return [
        {"state": "RUNNING", "tasks": {t: "RUNNING" for t in tasks}},
        {"state": "SUCCEEDED", "tasks": {t: "SUCCEEDED" for t in tasks}},
    ]


def _task_details(run_id: str, tasks: dict[str, Any]) -> list[dict[str, Any]]:
    """Task details as KFP's API lists them: the root DAG, then each task's driver and the task itself."""
    details: list[dict[str, Any]] = [
        {"run_id": run_id, "task_id": f"{run_id}-root", "display_name": "root", "state": "RUNNING"}
    ]
    for index, (name, value) in enumerate(tasks.items()):
        state, error = (value, "") if isinstance(value, str) else value
        details.append(
            {"run_id": run_id, "task_id": f"{run_id}-d{index}", "display_name": f"{name}-driver", "state": "SUCCEEDED"}
        )
        detail = {
            "run_id": run_id,
            "task_id": f"{run_id}-t{index}",
            "display_name": name,
            "state": state,
            "pod_name": f"{run_id}-{name}-pod",
        }
        # a task starts a minute after the one before it and, once over, ran for two minutes
        started = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=index)
        detail["start_time"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
        if state in {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}:
            detail["end_time"] = (started + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if error:
            detail["error"] = {"code": 2, "message": error}
        details.append(detail)
    return details
