"""The backend seam: what every backend is, does and returns.

What a backend is, the algorithms every backend shares and the reporter rule are written in
docs/architecture.md ("Architecture: backends"); this module is their code: the data a backend returns (:class:`JobHandle`,
:class:`JobStatus`, :class:`TaskLog`…), the :class:`Reporter` it talks to the user through, and :class:`Backend`,
whose :meth:`~Backend.run`, :meth:`~Backend.follow` and :meth:`~Backend.replace_schedule` hold the shared
algorithms on the primitives each backend supplies.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import PluginError

if TYPE_CHECKING:
    from ..config import PluginConfig


class Capability(str, enum.Enum):
    """What a backend can do; a command asks for one and is refused in one line when the backend lacks it."""

    RUN = "run"  # start a job and follow it to its end (`kedro run`, `run-once --wait`)
    SUBMIT = "submit"  # start a job and return while it runs (`--no-wait`, `wait=false`)
    SCHEDULE = "schedule"  # recurring runs (`kedro vertexai schedule`)
    LIST = "list"  # recent jobs and schedules (`kedro vertexai list-pipelines`)
    UI = "ui"  # a web page for the jobs (`kedro vertexai ui`)
    LOGS = "logs"  # a finished task's log lines (`kedro vertexai logs`)
    UPLOAD = "upload"  # a named, versioned pipeline (`kedro vertexai upload-pipeline`)


@dataclass(frozen=True)
class TaskState:
    """One task of a job as its engine reports it: the task's name (the Kedro node names the compiler put there),
    its state in the engine's words (``RUNNING``, ``SUCCEEDED``…) and, for a failed task, the engine's error."""

    name: str
    state: str
    error: str = ""
    #: what a backend that knows more may add (the local one): the task's Kedro nodes, its state in words (with
    #: why, and the node it is at), how long it ran and how many attempts it took
    nodes: tuple[str, ...] = ()
    detail: str = ""
    elapsed: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class JobHandle:
    """A job that exists. ``run_key`` is how the job's MLflow run is found again (the keyword arguments of
    :func:`kedro_vertex_runner.mlflow_tracking.close_job_run`: ``job_id=`` or ``job_name=``)."""

    job_id: str
    url: str | None = None
    run_key: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    state: str
    created: str = ""
    url: str | None = None
    pipeline: str = ""


@dataclass(frozen=True)
class ScheduleSummary:
    name: str
    cron: str
    state: str = ""
    next_run: str = ""
    schedule_id: str = ""


@dataclass(frozen=True)
class TaskLog:
    task: str
    lines: Sequence[str]
    source: str = ""  # where the lines came from (a URL or a file), shown above them
    state: str = ""  # the task's state when its log was read
    note: str = ""  # without lines: why (the log cannot be read, none yet…), one line
    title: str = ""  # the line shown above the lines instead of the usual one


@dataclass(frozen=True)
class UploadedPipeline:
    pipeline: str
    version: str
    uri: str = ""


@dataclass(frozen=True)
class JobRequest:
    """Everything a backend needs to start one job.

    ``run_id`` is the local backend's job id (``--runner-params run_id=``), refused elsewhere; ``template_uri`` is
    the registry template ``spec`` came from, if any; ``project_dir`` is the Kedro project (the local backend runs
    its tasks there); ``options`` are the backend's own runner params (``max_workers``, ``warm_start``…)."""

    spec: Mapping[str, Any]
    pipeline_name: str = "__default__"
    params: Mapping[str, Any] = field(default_factory=dict)
    template_uri: str | None = None
    run_id: str | None = None
    project_dir: Path | None = None
    cancel_on_interrupt: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleRequest:
    """One recurring run: ``cron`` in the five-field form users write, ``name`` its display name (a schedule of the
    same name is replaced)."""

    spec: Mapping[str, Any]
    name: str
    cron: str
    pipeline_name: str = "__default__"
    timezone: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    template_uri: str | None = None
    start_time: Any = None
    end_time: Any = None
    max_concurrent_runs: int | None = None
    max_concurrent_active_runs: int | None = None
    max_run_count: int | None = None
    allow_queueing: bool | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


class JobFailed(PluginError):
    """A job that exists ended without succeeding (failed, cancelled, errored). ``job`` names it, so the launcher
    can give the job's MLflow run its outcome."""

    def __init__(self, message: str, job: JobHandle, state: str = "FAILED", exit_code: int | None = None):
        super().__init__(message, exit_code=exit_code)
        self.job = job
        self.state = state

    @property
    def job_id(self) -> str:
        return self.job.job_id


@dataclass(frozen=True)
class JobStatus:
    """One read of a job (:meth:`Backend.poll`): its state in the engine's words, its tasks, whether it has ended,
    and the engine's own answer (``detail``) for the backend's :meth:`Backend.ended`."""

    state: str
    tasks: Sequence[TaskState] = ()
    ended: bool = False
    detail: Any = None


@dataclass(frozen=True)
class Schedule:
    """A schedule as :meth:`Backend.replace_schedule` handles it: its id, cron and state, and the engine's object."""

    schedule_id: str
    cron: str = ""
    state: str = ""
    active: bool = True
    detail: Any = None


class Unanswered(PluginError):
    """A read of a job that got no answer but may get one next time (429, 5xx, the network, an expired login):
    :meth:`Backend.follow` reports it and asks again after a back-off."""


#: seconds between two reads of a job while following it (default 10)
POLL_INTERVAL_ENV = "KEDRO_VERTEX_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 10.0
#: the longest back-off, in seconds, while the engine does not answer
MAX_BACKOFF = 60.0


def poll_interval() -> float:
    """Seconds between two reads of a job (``KEDRO_VERTEX_POLL_INTERVAL``, default 10)."""
    from ..values import env_seconds

    return env_seconds(POLL_INTERVAL_ENV, DEFAULT_POLL_INTERVAL)


def backoff(failures: int) -> float:
    """The wait after ``failures`` unanswered reads in a row: the poll interval doubled each time, at most
    :data:`MAX_BACKOFF`."""
    return min(poll_interval() * 2**failures, MAX_BACKOFF)


def when(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time of an engine's answer for listings (``fmt``); a value that is not a time is shown as it is."""
    if not value:
        return ""
    try:
        return str(value.strftime(fmt))
    except AttributeError:
        return str(value)


class Reporter(Protocol):
    """What a backend may tell the user while it works; implemented by the CLI and the runner."""

    def info(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...

    def notice(self, text: str) -> None:
        """A line about the launcher's own work (a retry, how to cancel a job left running), not a warning."""
        ...

    def progress(self, job: JobHandle, tasks: Sequence[TaskState], job_state: str) -> None: ...

    def task_event(self, job: JobHandle, task: str, text: str) -> None:
        """Task ``task`` of ``job`` changed state, in words (``RUNNING``, ``FAILED (exit 1), retrying in 2s``)."""
        ...

    def task_log(self, log: TaskLog) -> None: ...

    def confirm(self, question: str) -> bool: ...


class SilentReporter:
    """A reporter that keeps everything to itself (library use, tests of a backend's data)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, text: str) -> None:
        self.lines.append(f"Warning: {text}")

    def notice(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, job: JobHandle, tasks: Sequence[TaskState], job_state: str) -> None:
        pass

    def task_event(self, job: JobHandle, task: str, text: str) -> None:
        self.lines.append(f"{task}: {text}")

    def task_log(self, log: TaskLog) -> None:
        self.lines.extend(log.lines)

    def confirm(self, question: str) -> bool:
        return False


# how a job ended, for the launcher: (the job, whether it succeeded)
JobEnded = Callable[[JobHandle, bool], None]


class Backend:
    """Base class of every backend: the shared flow in :meth:`run`, the rest raising "cannot" in one line."""

    #: the name users write (`run_config.backend`, `--runner-params backend=`)
    name: ClassVar[str]
    #: one line for `--help` and errors
    title: ClassVar[str]
    #: storage schemes of job data ("" is a local folder), as `check_root` enforces them
    root_schemes: ClassVar[tuple[str, ...]]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: `project_id` and `region` must be set in vertexai.yml
    needs_gcp_project: ClassVar[bool] = True
    #: the engine substitutes `{{$.pipeline_job_uuid}}`/`{{$.pipeline_job_name}}` only in task inputs (KFP), so the
    #: compiler passes them as `runtimeValue` input parameters rather than inside container args
    job_ids_as_inputs: ClassVar[bool] = False
    #: tasks run on other machines: an MLflow tracking URI must be a server they reach
    remote_tasks: ClassVar[bool] = True
    #: the job dies with the launching process (its MLflow run is closed whatever ended the launcher)
    job_ends_with_launcher: ClassVar[bool] = False
    #: `--runner-params run_id=` names the job (resume a local run)
    takes_run_id: ClassVar[bool] = False
    #: `run_config` keys the engine cannot honour: one warning line each when they are set
    unsupported_keys: ClassVar[Mapping[str, str]] = {}
    #: how the engine names a job and a schedule, and itself, in messages ("job", "schedule", "Vertex AI")
    job_noun: ClassVar[str] = "job"
    schedule_noun: ClassVar[str] = "schedule"
    engine: ClassVar[str] = ""
    #: the state a cancelled job ends in, in the engine's words
    cancelled_state: ClassVar[str] = "CANCELLED"
    #: unanswered reads in a row after which following a job gives up (None: never)
    poll_retries: ClassVar[int | None] = None
    #: top-level keys of vertexai.yml the backend cannot run without (besides `project_id`/`region`, which
    #: `needs_gcp_project` asks for): a missing one is one error line naming the file and key
    required_keys: ClassVar[tuple[str, ...]] = ()
    #: tasks cannot read Secret Manager: `run_config.secrets` (and `notifications.webhook`) are refused with this
    #: hint (None: they can)
    secrets_refused: ClassVar[str | None] = None
    #: a task with machine settings (`resources.<name>.machine_type`…) runs as a Vertex AI CustomJob
    machines_as_custom_jobs: ClassVar[bool] = False
    #: a `gpu` count without an `accelerator` means nvidia.com/gpu (else the engine needs a type, as Vertex AI does)
    gpu_count_alone: ClassVar[bool] = True
    #: tasks run as Kubernetes pods the compiled spec places (`run_config.kubeflow.pod`, `.ttl`: the platform spec)
    kubernetes_pods: ClassVar[bool] = False
    #: the engine sends `run_config.notifications.email` (Google's e-mail exit task)
    email_notifications: ClassVar[bool] = False
    #: the engine passes an exit task the job's final status (a `taskFinalStatus` input, KFP's
    #: `dsl.PipelineTaskFinalStatus`)
    task_final_status: ClassVar[bool] = True

    @classmethod
    def compiles_final_status(cls, run_config: Any) -> bool:
        """Whether the exit task of a pipeline compiled with ``run_config`` gets the job's final status."""
        return cls.task_final_status

    @classmethod
    def webhook_argument(cls, run_config: Any) -> str | None:
        """The exit task's ``--webhook`` (where it reads the URL the job's final status is posted to): the Secret
        Manager reference of ``run_config.notifications.webhook``; None without a webhook."""
        return run_config.notifications.webhook

    def __init__(self, config: PluginConfig, reporter: Reporter | None = None) -> None:
        self.config = config
        self.reporter: Reporter = reporter or SilentReporter()

    # ---------------------------------------------------------------------------------------------------------
    # the shared flow

    def run(self, job: JobRequest, *, wait: bool = True, on_end: JobEnded | None = None) -> JobHandle:
        """Start ``job``; with ``wait``, follow it to its end. ``on_end`` hears how a job that ended, ended (not
        called for a job left running). Raises :class:`JobFailed` for a job that did not succeed."""
        self.require(Capability.RUN if wait else Capability.SUBMIT)
        self.check_run_id(job.run_id)
        from ..network import following

        handle: JobHandle | None = None
        try:
            if self.job_ends_with_launcher:  # the job runs here, for as long as its tasks do
                with following():
                    handle = self.start(job)
            else:
                handle = self.start(job)
            if wait and Capability.SUBMIT in self.capabilities:  # else start() ran the job to its end
                with following():
                    self.follow(handle, cancel_on_interrupt=job.cancel_on_interrupt)
            else:
                self.submitted(handle)
        except JobFailed as exc:
            if on_end:
                on_end(exc.job, False)
            raise
        except KeyboardInterrupt:
            if not self.job_ends_with_launcher:
                raise
            # the job died with the interrupted launcher: it was cancelled, as a remote one is on Ctrl-C
            stopped = handle or self.launcher_job(job)
            if on_end:
                on_end(stopped, False)
            raise JobFailed(
                f"interrupted: {self.job_noun} {stopped.job_id} was cancelled",
                stopped,
                state=self.cancelled_state,
                exit_code=130,
            ) from None
        except BaseException:
            if on_end and self.job_ends_with_launcher:
                on_end(handle or self.launcher_job(job), False)
            raise
        if wait and on_end:
            on_end(handle, True)
        return handle

    @classmethod
    def check_run_id(cls, run_id: str | None) -> None:
        """Refuse a run id (``--runner-params run_id=``) unless this backend names its jobs by it."""
        if run_id is not None and not cls.takes_run_id:
            takers = [name for name in _registered() if backend_takes_run_id(name)]
            raise PluginError(
                f"--runner-params run_id={run_id}: only the {' or '.join(takers)} backend takes a run id (on "
                f"{cls.title} it is the job's uuid); add backend={takers[0] if takers else '…'}"
            )

    @classmethod
    def check_schedule(cls, cron: str, timezone: str | None) -> None:
        """Refuse a cron expression or time zone this backend cannot schedule: called before anything is compiled
        or any credential is looked for (Vertex AI's five-field cron, an IANA time zone)."""
        from ..config import validate_cron

        try:
            validate_cron(cron)
        except ValueError as exc:
            raise PluginError(f"--cron: {exc}") from None
        if timezone:
            from ..config.rules import check_timezone

            try:
                check_timezone(timezone)
            except ValueError as exc:
                raise PluginError(f"--timezone: {exc}") from None

    @classmethod
    def refuse_run_config(cls, run_config: Any) -> tuple[str, str] | None:
        """A ``run_config`` value this backend's engine refuses by its own rules (not the plugin's): the key and
        why, in one line; None when there is none. Called when the configuration is validated."""
        return None

    @classmethod
    def refuse_accelerator(cls, accelerator: str, name: str) -> str | None:
        """What is wrong with a valid accelerator of ``resources.<name>`` on this engine, if anything (one line).
        None here: the local backend runs no accelerator and takes any."""
        return None

    def require(self, capability: Capability) -> None:
        if capability not in self.capabilities:
            raise PluginError(
                f"backend {self.name!r} cannot {_VERBS[capability]}; set run_config.backend (or --runner-params "
                f"backend=) to one that can: {', '.join(_able(capability)) or 'none'}"
            )

    @classmethod
    def prestart(cls, project_dir: Path, raw_run_config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        """Called as soon as ``VertexRunner`` is built, before Kedro loads the session: start anything slow that
        the job will need (the local backend's warm-start process). ``raw_run_config`` is ``run_config`` of
        ``conf/base/vertexai.yml`` as written (not validated yet), ``options`` the runner params. A no-op here."""

    # ---------------------------------------------------------------------------------------------------------
    # following a job: the shared loop on the primitives `poll`, `cancel`, `ended`

    def follow(self, job: JobHandle, *, cancel_on_interrupt: bool = False) -> None:
        """Follow ``job`` until it ends, reporting its tasks; :class:`JobFailed` unless it succeeded.

        On Ctrl-C the job is cancelled when ``cancel_on_interrupt`` or the user says so (:class:`JobFailed`, exit
        code 130: its MLflow run is closed), else left running (:class:`PluginError`, exit code 130)."""
        try:
            status = self.watch(job)
        except KeyboardInterrupt:
            self.interrupted(job, cancel_on_interrupt)
            raise
        self.ended(job, status)

    def watch(self, job: JobHandle, until: Callable[[JobStatus], bool] | None = None) -> JobStatus:
        """Read ``job`` every poll interval until it ends (or ``until`` holds), reporting each read; unanswered
        reads are reported and retried after a growing back-off (at most :attr:`poll_retries` in a row)."""
        failures = 0
        while True:
            try:
                status = self.poll(job)
            except Unanswered as exc:
                failures += 1
                if self.poll_retries is not None and failures > self.poll_retries:
                    raise PluginError(str(exc)) from None
                delay = backoff(failures)
                self.reporter.notice(f"{exc}; retrying in {delay:g}s")
                time.sleep(delay)
                continue
            failures = 0
            if until is None:
                self.reporter.progress(job, status.tasks, status.state)
            self.observed(job, status)
            if status.ended or (until is not None and until(status)):
                return status
            time.sleep(poll_interval())

    def interrupted(self, job: JobHandle, cancel: bool) -> None:
        """Ctrl-C while following ``job``: cancel it (if told to or the user says so) or leave it running."""
        what = f"{self.job_noun} {job.job_id}"
        self.reporter.notice("")
        if cancel or self.reporter.confirm(f"Cancel {what} on {self.engine}?"):
            self.cancel(job.job_id)
            raise JobFailed(
                f"interrupted: cancellation of {what} requested", job, state=self.cancelled_state, exit_code=130
            )
        hint = self.stop_hint(job)
        if hint:
            self.reporter.notice(hint)
        where = f"; stop it at {job.url}" if job.url else ""
        raise PluginError(f"interrupted: {what} keeps running on {self.engine}{where}", exit_code=130)

    def poll(self, job: JobHandle) -> JobStatus:
        """Read the job once; :class:`Unanswered` when the engine may answer next time."""
        raise NotImplementedError

    def observed(self, job: JobHandle, status: JobStatus) -> None:
        """After each read of a followed job (e.g. link it to an experiment once it runs). A no-op here."""

    def cancel(self, job_id: str) -> str:
        """Ask the engine to cancel job ``job_id``; one line saying so."""
        raise PluginError(f"backend {self.name!r} cannot cancel a job: use --backend vertex")

    def stop_hint(self, job: JobHandle) -> str:
        """How the user can stop a job left running, beyond its page (shown after Ctrl-C). None here."""
        return ""

    def ended(self, job: JobHandle, status: JobStatus) -> None:
        """``job`` ended as ``status`` says: report it, and raise :class:`JobFailed` unless it succeeded."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------------------
    # replacing a schedule by name: the shared sequence on the schedule primitives below

    def replace_schedule(self, name: str, create: Callable[[], tuple[str, str]], fix_where: str) -> str:
        """Create a schedule with ``create`` (returns its id and the line that announces it) in place of the
        schedules named ``name``: earlier active ones are paused first, then the new one is created, then the
        earlier ones are deleted. A refused creation resumes the paused ones (best effort: the refusal is the news);
        an earlier one that cannot be deleted stays paused, so the pipeline never runs twice. ``fix_where`` says
        where the user puts things right (``in the console``)."""
        noun = self.schedule_noun
        earlier = self.schedules_named(name)
        paused: list[Schedule] = []
        try:
            for old in earlier:
                if old.active:
                    self.pause_schedule(old)
                    paused.append(old)
            created, announcement = create()
        except PluginError:
            for old in paused:
                try:
                    self.resume_schedule(old)
                except Exception:
                    self.reporter.warn(f"could not resume earlier {noun} {old.schedule_id}: resume it {fix_where}")
            raise
        self.reporter.info(announcement)
        failures: list[str] = []
        for old in earlier:
            try:
                self.delete_schedule(old)
            except PluginError as exc:
                failures.append(str(exc))
                continue
            self.reporter.info(f"Replaced earlier {noun} {old.schedule_id} ({old.cron}, {old.state})")
        if failures:
            raise PluginError(
                f"the new {noun} {created} is active, but {len(failures)} earlier one(s) named {name!r} could not be "
                f"deleted and stay paused (they will not run): {failures[0]}; delete them {fix_where}"
            )
        return created

    def schedules_named(self, name: str) -> list[Schedule]:
        raise NotImplementedError

    def pause_schedule(self, schedule: Schedule) -> None:
        raise NotImplementedError

    def resume_schedule(self, schedule: Schedule) -> None:
        raise NotImplementedError

    def delete_schedule(self, schedule: Schedule) -> None:
        raise NotImplementedError

    def where(self) -> str:
        """Where this backend's jobs live, for listings (a project and region, a host…)."""
        return self.title

    def launcher_job(self, job: JobRequest) -> JobHandle:
        """The handle of a job that dies with the launcher before :meth:`start` returned (local backend)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------------------
    # what differs between backends

    def start(self, job: JobRequest) -> JobHandle:
        """Create the job (for a backend without SUBMIT: run it to its end). Nothing half-made on failure."""
        raise NotImplementedError

    def submitted(self, job: JobHandle) -> None:
        """After :meth:`start` when nobody waits for ``job`` (e.g. link it to an experiment once it runs)."""

    def schedule(self, request: ScheduleRequest) -> str:
        """Create (or replace, by name) a recurring run; returns its id."""
        self.require(Capability.SCHEDULE)
        raise NotImplementedError

    def list_jobs(self, limit: int = 20) -> list[JobSummary]:
        self.require(Capability.LIST)
        raise NotImplementedError

    def list_schedules(self) -> list[ScheduleSummary]:
        self.require(Capability.LIST)
        raise NotImplementedError

    def ui_url(self) -> str:
        self.require(Capability.UI)
        raise NotImplementedError

    def task_logs(self, job_id: str, task: str | None = None, lines: int = 20) -> list[TaskLog]:
        self.require(Capability.LOGS)
        raise NotImplementedError

    def check_upload(self) -> None:
        """Before compiling for :meth:`upload`: refuse at once what would make the upload fail (a missing setting)."""
        self.require(Capability.UPLOAD)

    def upload(self, spec: Mapping[str, Any], name: str, tags: Sequence[str] = ()) -> UploadedPipeline:
        self.require(Capability.UPLOAD)
        raise NotImplementedError

    def rerun(self, job_id: str, job: JobRequest, *, wait: bool = True) -> JobHandle:
        """Start a job running the failed tasks of job ``job_id`` (and what depends on them) with its stored data,
        following it when ``wait``; :class:`JobFailed` unless it succeeded."""
        raise PluginError(f"backend {self.name!r} cannot rerun a job's failed tasks: use --backend vertex")

    def change_schedule(self, name: str, action: str, *, catch_up: bool = False) -> list[str]:
        """``pause``, ``resume`` or ``delete`` (``action``) the schedules called ``name``; one line each."""
        raise PluginError(f"backend {self.name!r} cannot {action} a schedule: use --backend vertex")

    def report_page(self, ref: str, path: Path) -> str:
        """``kedro vertexai report REF``: the HTML page picturing run or job ``ref`` (the page is written to
        ``path``: a local run's page links its logs relative to it)."""
        raise PluginError(f"backend {self.name!r} cannot draw a run's picture: use --backend vertex")


_VERBS = {
    Capability.RUN: "run a job and wait for it",
    Capability.SUBMIT: "submit a job without waiting for it",
    Capability.SCHEDULE: "schedule recurring runs",
    Capability.LIST: "list jobs and schedules",
    Capability.UI: "open a web UI",
    Capability.LOGS: "show task logs",
    Capability.UPLOAD: "upload pipelines",
}


def _registered() -> list[str]:
    from . import REGISTRY

    return list(REGISTRY)


def backend_takes_run_id(name: str) -> bool:
    from . import backend_class

    return backend_class(name).takes_run_id


def _able(capability: Capability) -> list[str]:
    from . import REGISTRY, backend_class

    return [name for name in REGISTRY if capability in backend_class(name).capabilities]
