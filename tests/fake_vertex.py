"""A small fake of the Vertex AI REST API (v1), enough for the plugin's Vertex backend.

Vertex AI has no emulator, so the tests drive the real ``google-cloud-aiplatform`` REST client against this server.
It implements pipeline jobs (create, get, list, cancel; create and get under v1beta1 too, where a rerun is
created; every created job gets the numeric ``vertex-ai-pipelines-run-billing-id`` label), schedules (create, get, list, pause, delete) and the
Metadata API calls that attach a job to an experiment (metadata store, contexts, addContextChildren). Every
request is recorded; requests it does not know are answered with 501 and listed in ``unknown`` (and printed), so
a test can assert the client used nothing the fake does not model.

Job states are scripted: :meth:`FakeVertex.script_next_job` queues the sequence of answers the *next* created
job gives to successive GETs (the last one repeats). An entry is a state name (``"RUNNING"``), an HTTP status to
fail that poll with (``503``), or a dict ``{"state": ..., "tasks": {task: state | (state, error)}, "error": msg}``
whose ``tasks`` are keyed by the spec's task keys. Task details come back as Vertex AI reports them (see
:func:`_task_details`): named by ``taskInfo.name``, the exit handler's tasks under its own sub-DAG entry, and the
CustomJob that ran each started task (:func:`custom_job_id`), whose log a fake Cloud Logging can serve.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import zlib
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_http import LocalHTTPServer

# v1 and v1beta1 share the routes (the plugin uses v1beta1 for a job on a persistent resource and for a rerun); a
# recorded request's "path" says which version was called
_PREFIX = r"^/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
#: the label Vertex AI gives every job: its numeric id, which a rerun names as ``originalPipelineJobId``
BILLING_LABEL = "vertex-ai-pipelines-run-billing-id"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVertex(LocalHTTPServer):
    """The server's state; start with :meth:`start`, always :meth:`stop`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.unknown: list[str] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_scripts: dict[str, deque[Any]] = {}
        self.next_scripts: deque[list[Any]] = deque()
        self.schedules: dict[str, dict[str, Any]] = {}
        self.stores: dict[str, dict[str, Any]] = {}
        self.contexts: dict[str, dict[str, Any]] = {}
        self.fail_next: dict[str, tuple[int, str]] = {}
        self.on_create: Any = None  # called with each created job's id (e.g. to act as its tasks would)
        self._ids = itertools.count(1)

    # ---------------------------------------------------------------------------------------------------------
    # test API

    def start(self) -> FakeVertex:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self.serve(Handler)
        return self

    @property
    def endpoint(self) -> str:
        return self.base_url

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.unknown.clear()
            self.jobs.clear()
            self.job_scripts.clear()
            self.next_scripts.clear()
            self.schedules.clear()
            self.stores.clear()
            self.contexts.clear()
            self.fail_next.clear()
            self.on_create = None

    def script_next_job(self, *answers: Any) -> None:
        """Queue the GET answers of the next created job (the last answer repeats)."""
        with self.lock:
            self.next_scripts.append(list(answers))

    def fail(self, operation: str, status: int, message: str) -> None:
        """Make the next request of ``operation`` (e.g. ``"create_job"``) fail with ``status``."""
        with self.lock:
            self.fail_next[operation] = (status, message)

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        """Recorded requests with ``method`` whose path matches the regex ``pattern``."""
        with self.lock:
            return [r for r in self.requests if r["method"] == method and re.search(pattern, r["path"])]

    def add_schedule(self, project: str, location: str, display_name: str, cron: str = "0 1 * * *") -> str:
        with self.lock:
            sid = str(next(self._ids))
            name = f"projects/{project}/locations/{location}/schedules/{sid}"
            self.schedules[name] = {
                "name": name,
                "displayName": display_name,
                "cron": cron,
                "state": "ACTIVE",
                "createTime": _now(),
                "maxConcurrentRunCount": "1",
                "createPipelineJobRequest": {"parent": f"projects/{project}/locations/{location}"},
            }
            return name

    def add_job(self, job_name: str, body: dict[str, Any], *answers: Any) -> str:
        """A job that exists without a create request (resource name ``job_name``, ``body`` as created), answering
        GETs with ``answers`` as :meth:`script_next_job` scripts them; returns its id."""
        with self.lock:
            job = json.loads(json.dumps(body))
            job.update({"name": job_name, "createTime": _now(), "updateTime": _now()})
            job["labels"] = {**(job.get("labels") or {}), BILLING_LABEL: str(2000000 + len(self.jobs))}
            self.jobs[job_name] = job
            self.job_scripts[job_name] = deque(answers or ["SUCCEEDED"])
            return job_name.rsplit("/", 1)[-1]

    # ---------------------------------------------------------------------------------------------------------
    # request handling (called with the lock held)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        routes = [
            ("POST", r"/pipelineJobs$", self._create_job, "create_job"),
            ("GET", r"/pipelineJobs$", self._list_jobs, "list_jobs"),
            ("GET", r"/pipelineJobs/(?P<id>[^/:]+)$", self._get_job, "get_job"),
            ("POST", r"/pipelineJobs/(?P<id>[^/:]+):cancel$", self._cancel_job, "cancel_job"),
            ("POST", r"/schedules$", self._create_schedule, "create_schedule"),
            ("GET", r"/schedules$", self._list_schedules, "list_schedules"),
            ("GET", r"/schedules/(?P<id>[^/:]+)$", self._get_schedule, "get_schedule"),
            ("DELETE", r"/schedules/(?P<id>[^/:]+)$", self._delete_schedule, "delete_schedule"),
            ("POST", r"/schedules/(?P<id>[^/:]+):pause$", self._pause_schedule, "pause_schedule"),
            ("POST", r"/schedules/(?P<id>[^/:]+):resume$", self._resume_schedule, "resume_schedule"),
            ("GET", r"/metadataStores/(?P<store>[^/:]+)$", self._get_store, "get_store"),
            ("POST", r"/metadataStores$", self._create_store, "create_store"),
            ("GET", r"/metadataStores/(?P<store>[^/:]+)/contexts/(?P<ctx>[^/:]+)$", self._get_context, "get_context"),
            ("POST", r"/metadataStores/(?P<store>[^/:]+)/contexts$", self._create_context, "create_context"),
            (
                "POST",
                r"/metadataStores/(?P<store>[^/:]+)/contexts/(?P<ctx>[^/:]+):addContextChildren$",
                self._add_children,
                "add_context_children",
            ),
            ("GET", r"/.+/operations/[^/:]+$", self._get_operation, "get_operation"),
        ]
        for route_method, suffix, func, operation in routes:
            match = re.match(_PREFIX + suffix, path)
            if route_method == method and match:
                if operation in self.fail_next:
                    return _error(*self.fail_next.pop(operation))
                parent = f"projects/{match['project']}/locations/{match['location']}"
                return func(parent, match.groupdict(), query, body)
        self.unknown.append(f"{method} {path}")
        print(f"FAKE VERTEX: UNKNOWN REQUEST {method} {path} {query}", file=sys.stderr, flush=True)
        return _error(501, f"fake Vertex AI does not implement {method} {path}")

    # pipeline jobs

    def _create_job(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        job_id = query.get("pipelineJobId") or f"job-{next(self._ids)}"
        name = f"{parent}/pipelineJobs/{job_id}"
        if name in self.jobs:
            return _error(409, f"PipelineJob {name} already exists")
        job = dict(body or {})
        job.update({"name": name, "state": "PIPELINE_STATE_PENDING", "createTime": _now(), "updateTime": _now()})
        job["labels"] = {**(job.get("labels") or {}), BILLING_LABEL: str(1000000 + len(self.jobs))}
        self.jobs[name] = job
        self.job_scripts[name] = deque(self.next_scripts.popleft() if self.next_scripts else ["SUCCEEDED"])
        if self.on_create is not None:
            self.on_create(job_id)
        return 200, job

    def _get_job(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        name = f"{parent}/pipelineJobs/{groups['id']}"
        job = self.jobs.get(name)
        if job is None:
            return _error(404, f"PipelineJob {name} not found")
        script = self.job_scripts[name]
        answer = script.popleft() if len(script) > 1 else script[0]
        if isinstance(answer, int):
            return _error(answer, "the service is currently unavailable")
        if isinstance(answer, str):
            answer = {"state": answer}
        state = answer["state"]
        job["state"] = f"PIPELINE_STATE_{state}"
        job["updateTime"] = _now()
        default_task_state = {"QUEUED": "PENDING", "PENDING": "PENDING", "CANCELLING": "CANCELLING"}.get(state, state)
        root_state = state if state in {"RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"} else "PENDING"
        root_task = {"taskId": "1", "taskName": groups["id"], "state": root_state}
        scripted = answer.get("tasks") or None
        unknown = sorted(set(scripted or ()) - {key for key, _, _, _ in _spec_tasks(job)})
        if unknown:  # a mistake in the test's script, not something Vertex AI would answer
            self.unknown.append(f"scripted tasks {unknown} are not in the job's spec")
            return _error(500, f"fake Vertex AI: scripted tasks {unknown} are not in the job's spec")
        details = _task_details(parent, job, scripted, default_task_state)
        job["jobDetail"] = {
            "pipelineContext": {"name": f"{parent}/metadataStores/default/contexts/pipeline"},
            "pipelineRunContext": {"name": f"{parent}/metadataStores/default/contexts/{groups['id']}"},
            "taskDetails": [root_task, *details],
        }
        if answer.get("error"):
            job["error"] = {"code": 9, "message": answer["error"]}
        return 200, job

    def _list_jobs(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        jobs = [j for n, j in self.jobs.items() if n.startswith(parent + "/")]
        jobs.sort(key=lambda j: j["createTime"], reverse=True)
        size = int(query.get("pageSize") or 0)
        if size:
            jobs = jobs[:size]
        return 200, {"pipelineJobs": jobs}

    def _cancel_job(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        name = f"{parent}/pipelineJobs/{groups['id']}"
        if name not in self.jobs:
            return _error(404, f"PipelineJob {name} not found")
        self.job_scripts[name] = deque(["CANCELLING", "CANCELLED"])
        return 200, {}

    # schedules

    def _create_schedule(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        name = f"{parent}/schedules/{next(self._ids)}"
        schedule = dict(body or {})
        schedule.update({"name": name, "state": "ACTIVE", "createTime": _now()})
        self.schedules[name] = schedule
        return 200, schedule

    def _list_schedules(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        return 200, {"schedules": [s for n, s in self.schedules.items() if n.startswith(parent + "/")]}

    def _get_schedule(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        schedule = self.schedules.get(f"{parent}/schedules/{groups['id']}")
        return (200, schedule) if schedule else _error(404, "schedule not found")

    def _delete_schedule(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        name = f"{parent}/schedules/{groups['id']}"
        if self.schedules.pop(name, None) is None:
            return _error(404, f"Schedule {name} not found")
        return 200, {
            "name": f"{name}/operations/{next(self._ids)}",
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }

    def _pause_schedule(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        schedule = self.schedules.get(f"{parent}/schedules/{groups['id']}")
        if schedule is None:
            return _error(404, "schedule not found")
        schedule["state"] = "PAUSED"
        return 200, {}

    def _resume_schedule(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        schedule = self.schedules.get(f"{parent}/schedules/{groups['id']}")
        if schedule is None:
            return _error(404, "schedule not found")
        schedule["state"] = "ACTIVE"
        return 200, {}

    # metadata (experiments)

    def _get_store(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        store = self.stores.get(f"{parent}/metadataStores/{groups['store']}")
        return (200, store) if store else _error(404, "metadata store not found")

    def _create_store(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        name = f"{parent}/metadataStores/{query.get('metadataStoreId', 'default')}"
        self.stores[name] = {"name": name, "createTime": _now()}
        return 200, {
            "name": f"{name}/operations/{next(self._ids)}",
            "done": True,
            "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.MetadataStore", **self.stores[name]},
        }

    def _get_context(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        context = self.contexts.get(f"{parent}/metadataStores/{groups['store']}/contexts/{groups['ctx']}")
        return (200, context) if context else _error(404, "context not found")

    def _create_context(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        store = f"{parent}/metadataStores/{groups['store']}"
        if store not in self.stores:
            return _error(404, f"MetadataStore {store} not found")
        name = f"{store}/contexts/{query.get('contextId') or next(self._ids)}"
        if name in self.contexts:
            return _error(409, f"Context {name} already exists")
        context = dict(body or {})
        context.update({"name": name, "createTime": _now(), "childContexts": []})
        self.contexts[name] = context
        return 200, context

    def _add_children(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        name = f"{parent}/metadataStores/{groups['store']}/contexts/{groups['ctx']}"
        if name not in self.contexts:
            return _error(404, f"Context {name} not found")
        self.contexts[name]["childContexts"] += (body or {}).get("childContexts", [])
        return 200, {}

    def _get_operation(self, parent: str, groups: dict, query: dict, body: Any) -> tuple[int, Any]:
        return 200, {
            "name": "operation",
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }


def custom_job_id(task_key: str) -> str:
    """The id of the CustomJob the fake says ran the spec task ``task_key`` (stable, so tests can seed its log)."""
    return str(zlib.crc32(task_key.encode()))


def _spec_tasks(job: dict[str, Any]) -> list[tuple[str, str, str | None, bool]]:
    """``(task key, taskInfo.name, parent DAG task key, is a DAG)`` of every task of the job's spec, sub-DAGs
    (the exit handler's group) included, parents before their children."""
    spec = job.get("pipelineSpec") or {}
    components = spec.get("components") or {}
    found: list[tuple[str, str, str | None, bool]] = []

    def walk(dag: dict[str, Any], parent_key: str | None) -> None:
        for key, task in sorted((dag.get("tasks") or {}).items()):
            component = components.get((task.get("componentRef") or {}).get("name", ""), {})
            found.append((key, (task.get("taskInfo") or {}).get("name") or key, parent_key, "dag" in component))
            if "dag" in component:
                walk(component["dag"], key)

    walk((spec.get("root") or {}).get("dag") or {}, None)
    return found or [("task", "task", None, False)]


_NOT_STARTED = {"PENDING", "NOT_TRIGGERED", "SKIPPED", "CANCELLING"}
_ENDED = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _task_details(
    parent: str, job: dict[str, Any], scripted: dict[str, Any] | None, default_state: str
) -> list[dict[str, Any]]:
    """``jobDetail.taskDetails`` after the root entry, shaped as Vertex AI reports them: ``taskName`` is the task's
    ``taskInfo.name``; a sub-DAG (the exit handler) is an entry of its own whose tasks name it as their parent; a
    task whose container started names its CustomJob in ``executorDetail.containerDetail.mainJob``.

    ``scripted`` maps spec task keys to a state or ``(state, error message)``; without it every task is in
    ``default_state``. Only scripted tasks (and the sub-DAGs holding them) are reported.
    """
    tasks = _spec_tasks(job)
    ids = {key: str(index) for index, (key, _, _, _) in enumerate(tasks, start=2)}
    display = {key: name for key, name, _, _ in tasks}
    states: dict[str, tuple[str, str | None]] = {}
    for key, _, _, is_dag in tasks:
        if is_dag:
            continue
        if scripted is None:
            states[key] = (default_state, None)
        elif key in scripted:
            value = scripted[key]
            states[key] = value if isinstance(value, tuple) else (value, None)
    for key, _, _parent, is_dag in reversed(tasks):  # children first: a DAG's state comes from its tasks
        if is_dag:
            inner = [states[k][0] for k, _, p, _ in tasks if p == key and k in states]
            if inner:
                states[key] = (_dag_state(inner), None)
    details = []
    for key, name, parent_key, is_dag in tasks:
        if key not in states:
            continue
        task_state, message = states[key]
        detail: dict[str, Any] = {
            "taskId": ids[key],
            "parentTaskId": ids[parent_key] if parent_key else "1",
            "taskName": name,
            "taskUniqueName": f"{display[parent_key]}.{name}" if parent_key else name,
            "state": task_state,
            "createTime": job["createTime"],
        }
        if not is_dag and task_state not in _NOT_STARTED:
            detail["executorDetail"] = {"containerDetail": {"mainJob": f"{parent}/customJobs/{custom_job_id(key)}"}}
            # a task starts a minute after the one before it in the spec and, once over, ran for two minutes
            started = datetime.strptime(job["createTime"], "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(minutes=int(ids[key]))
            detail["startTime"] = started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if task_state in _ENDED:
                detail["endTime"] = (started + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if message:
            detail["error"] = {"code": 9, "message": message}
        details.append(detail)
    return details


def _dag_state(inner: list[str]) -> str:
    for state in ("FAILED", "RUNNING", "PENDING", "CANCELLED"):
        if state in inner:
            return state
    return "SUCCEEDED"


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeVertex
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else None
        state = self.server_state
        with state.lock:
            state.requests.append({"method": self.command, "path": parts.path, "query": query, "body": body})
            status, payload = state.handle(self.command, parts.path, query, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve
