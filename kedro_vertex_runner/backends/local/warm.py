"""Warm start for the local backend: task processes forked from a parent that has already imported the project.

A task process that starts from nothing spends most of a short task importing Kedro, the project's settings and
pipelines and the libraries its nodes use (pandas, scikit-learn, mlflow…) — seconds per task, which made a local
run several times slower than plain ``kedro run``. Like :mod:`multiprocessing`'s ``forkserver`` with preloading,
the local backend therefore starts one *zygote* per run (``python -m kedro_vertex_runner.backends.local.warm``) that
imports all of that once and then forks one child per task on request. Each child is a fresh fork of the same
clean zygote, never reused, so nothing one task does reaches another.

What the zygote shares with its children — imported modules only: Kedro, this plugin's task entrypoint, the
project's settings module, every node module its registered pipelines import (and the libraries they import), the
dataset classes named in ``conf/*/catalog*.yml``, the ``kedro.hooks`` plugins the tasks load, and ``gcsfs`` for a
``gs://`` root. What it never does: create a Kedro session or context, load any configuration (no config loader,
no OmegaConf resolver registered, not even this plugin's), open an MLflow run, keep the pipelines it built (the
registry is reset, so each task builds its own), or keep its logging configuration (each task configures logging
again from its own environment).

What each child does before it runs the entrypoint's ``main(argv)`` with the task's argv from the spec: its own
session and process group (``setsid``), the kernel's parent-death signal, subreaper status (an orphaned descendant
stays the task's), stdout/stderr into the task's log, stdin from ``/dev/null``, the task's environment (replacing
the zygote's), working directory, default signal handlers, fresh random seeds (``random`` and numpy's global
generator). The task's argv format is the entrypoint's business: the zygote passes it through unchanged. When the
entrypoint returns, the child ends as a fresh interpreter would (:func:`~kedro_vertex_runner.task.processes.finish`:
threading's shutdown hooks, then the ``atexit`` handlers, then whatever is left running is killed), never waiting on
a library's workers.

Protocol, one JSON object per line: the launcher writes ``{"key", "argv", "env", "cwd", "log"}`` to the zygote's
stdin; the zygote answers ``{"key", "pid"}`` (or ``{"key", "error"}``) once forked and ``{"pid", "status"}`` when
the task has exited (``status`` as :attr:`subprocess.Popen.returncode`: negative for a signal). When its stdin
closes — the run ended, or the launcher died, SIGKILL included — the zygote kills every task's process tree,
removes the temporary files of interrupted writes in the run folder (sent as ``{"sweep": folder}``) and exits.
It also dies with the launcher (``PR_SET_PDEATHSIG``) and kills any orphan adopted from a finished task.

``VertexRunner`` starts the zygote as soon as Kedro builds it (:func:`prestart`), when ``conf/base/vertexai.yml``
or ``--runner-params`` select the local backend, so preloading overlaps Kedro's own start-up in the launcher. It
does so by *forking* the launcher (:func:`_forked_zygote`): Kedro builds the runner before it creates the session,
so at that moment the launcher holds no session, context, configuration or MLflow run, only imported modules —
Kedro, its CLI and the CLI plugins (kedro-mlflow's imports mlflow) — which the zygote then need not import again.
The fork resets what a fresh zygote would not have: environment, working directory, standard streams (the
launcher's output never reaches the zygote or a task), signal handlers and session. Where forking is not safe — the
launcher already runs a second thread (a fork copies no thread but every lock one holds) — or a zygote is started
later (``run_spec`` called directly), it is a fresh ``python -m kedro_vertex_runner.backends.local.warm`` instead, which
preloads everything itself; the protocol and what tasks get are the same either way.

Only tasks whose command is ``python -m kedro_vertex_runner.entrypoint …`` start warm; anything else, and every
task where ``fork`` is unavailable or warm start is switched off, starts as a fresh process.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ...kedro_compat import forget_loaded_pipelines
from ...pipeline_spec import ENTRYPOINT_MODULE

#: ``0``/``false`` switches warm start off (every task a fresh process); ``1``/``true`` switches it on
WARM_START_ENV = "KEDRO_VERTEX_WARM_START"
_REAP_INTERVAL = 0.05
_KILL_GRACE = 2.0


def available() -> bool:
    """Whether this platform can fork a warm process (POSIX with ``os.fork``)."""
    return os.name == "posix" and hasattr(os, "fork")


def entrypoint_args(argv: list[str]) -> list[str] | None:
    """The entrypoint's arguments if ``argv`` runs the task entrypoint with this interpreter, else None."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1:3] == ["-m", ENTRYPOINT_MODULE]:
        return list(argv[3:])
    return None


# ----------------------------------------------------------------------------------------------------------------
# launcher side


class WarmProcess:
    """A task process forked by the zygote: the part of :class:`subprocess.Popen` the scheduler uses."""

    def __init__(self, server: Zygote, key: int):
        self._server = server
        self.key = key
        self.pid: int | None = None
        self.returncode: int | None = None
        self.error: str | None = None
        self._pending_signal: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._server.changed:
            while self.returncode is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired("warm task", timeout or 0)
                self._server.changed.wait(left)
        return self.returncode

    def signal_group(self, sig: int) -> None:
        """Signal the task's process group; a signal sent before the fork is known is delivered once it is."""
        with self._server.changed:
            if self.pid is None:
                if self.returncode is None:
                    self._pending_signal = sig if self._pending_signal != signal.SIGKILL else signal.SIGKILL
                return
            pid = self.pid
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def _forked(self, pid: int) -> None:  # with the lock held
        self.pid = pid
        if self._pending_signal is not None:
            try:
                os.killpg(pid, self._pending_signal)
            except OSError:  # not its own group yet (setsid is its first step): it is alone, signal it
                try:
                    os.kill(pid, self._pending_signal)
                except OSError:
                    pass


class Zygote:
    """The launcher's handle on one zygote process: start tasks, learn when they end, stop it."""

    def __init__(self, project_dir: Path, env: dict[str, str], remote_root: bool = False, fork: bool = False):
        """``fork``: fork the zygote from this process when that is safe (see :func:`_forked_zygote`), so it
        starts with what the launcher has imported already; otherwise, or when it is not safe, start it fresh."""
        self.process: subprocess.Popen[bytes] | _ForkedZygote
        forked = _forked_zygote(project_dir, env, remote_root) if fork else None
        if forked is not None:
            self.process = forked
        else:
            command = [sys.executable, "-m", __name__, "--project-dir", str(project_dir)]
            if remote_root:
                command.append("--remote-root")
            self.process = subprocess.Popen(
                command,
                cwd=project_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops tasks in order
            )
        self.changed = threading.Condition()
        self.events = 0  # messages received so far (under ``changed``): see :meth:`wait_for_news`
        self.alive = True
        self._next_key = 0
        self._by_key: dict[int, WarmProcess] = {}
        self._by_pid: dict[int, WarmProcess] = {}
        self._reader = threading.Thread(target=self._read, name="kedro-vertex-zygote", daemon=True)
        self._reader.start()

    def sweep_on_exit(self, directory: str) -> None:
        """Have the zygote remove interrupted writes' temporary files in ``directory`` when it stops."""
        self._send({"sweep": directory})

    def _send(self, message: dict[str, Any]) -> None:
        stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]
        try:
            stdin.write((json.dumps(message) + "\n").encode())
            stdin.flush()
        except (OSError, ValueError) as exc:
            with self.changed:
                self.alive = False
            raise OSError(f"the warm-start process has exited ({exc})") from None

    def start(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> WarmProcess:
        """Ask for a task process running the entrypoint with ``args``; raises OSError if the zygote is gone."""
        with self.changed:
            if not self.alive:
                raise OSError("the warm-start process has exited")
            self._next_key += 1
            process = WarmProcess(self, self._next_key)
            self._by_key[process.key] = process
        try:
            self._send({"key": process.key, "argv": args, "env": env, "cwd": str(cwd), "log": str(log)})
        except OSError:
            with self.changed:
                self._by_key.pop(process.key, None)
            raise
        return process

    def _read(self) -> None:
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self.changed:
                if "key" in message:
                    process = self._by_key.pop(message["key"], None)
                    if process is None:
                        continue
                    if "pid" in message:
                        self._by_pid[message["pid"]] = process
                        process._forked(message["pid"])
                    else:
                        process.error = str(message.get("error"))
                        process.returncode = 1
                elif "pid" in message:
                    process = self._by_pid.pop(message["pid"], None)
                    if process is not None:
                        process.returncode = int(message["status"])
                self.events += 1
                self.changed.notify_all()
        with self.changed:  # the zygote is gone: its children died with it (parent-death signal)
            self.alive = False
            for process in [*self._by_key.values(), *self._by_pid.values()]:
                if process.returncode is None:
                    process.returncode = -signal.SIGKILL
                    process.error = "the warm-start process exited"
            self._by_key.clear()
            self._by_pid.clear()
            self.events += 1
            self.changed.notify_all()

    def wait_for_news(self, seen: int, timeout: float) -> int:
        """Wait until a task has been forked or has exited since ``seen`` (an earlier return value), at most
        ``timeout`` seconds; returns the current count. The launcher reacts at once instead of at its next poll."""
        with self.changed:
            if self.events == seen:
                self.changed.wait(timeout)
            return self.events

    def close(self, timeout: float = 10.0) -> None:
        """End the zygote: it kills whatever task is still running, sweeps temporary files, and exits."""
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=1)


class _ForkedZygote:
    """A zygote forked from the launcher: the part of :class:`subprocess.Popen` that :class:`Zygote` uses."""

    def __init__(self, pid: int, requests: int, replies: int):
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] = os.fdopen(requests, "wb")
        self.stdout: IO[bytes] = os.fdopen(replies, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL  # reaped elsewhere
            else:
                if pid:
                    self.returncode = _returncode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired([sys.executable, "-m", __name__], timeout or 0)
            time.sleep(0.01)
        return self.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass


def _forked_zygote(project_dir: Path, env: dict[str, str], remote_root: bool) -> _ForkedZygote | None:
    """Fork the zygote from this (the launcher's) process, or None where that is not safe.

    The fork inherits every module the launcher has imported (Kedro, its CLI, mlflow…), so the zygote's own
    preloading is only what the launcher has not imported yet, and it does not compete with the launcher for the
    CPU as long. Safe only before the launcher has started threads (a fork copies no thread but every lock) and
    while no Kedro session exists (``VertexRunner`` is built before Kedro creates the session); the zygote then
    preloads as a fresh one does, and resets what it inherited that a task must not see: environment, working
    directory, signal handlers, standard streams (the launcher's own output never reaches the zygote or a task).
    """
    if not available() or threading.active_count() > 1:
        return None
    project_imported = _import_node_modules()
    if threading.active_count() > 1:  # a node module started one
        return None
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is copied into the child, to be written twice
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        pid = os.fork()
    except OSError:
        for fd in (requests_read, requests_write, replies_read, replies_write):
            os.close(fd)
        return None
    if pid == 0:  # the zygote: never returns into the launcher's code
        code = 0
        try:
            os.setsid()  # Ctrl-C reaches the launcher, which stops tasks in order
            os.close(requests_write)
            os.close(replies_read)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            os.chdir(project_dir)
            os.environ.clear()
            os.environ.update(env)
            sys.argv = [__file__, "--project-dir", str(project_dir)]
            _serve(project_dir, remote_root, requests_read, replies_write, project_imported)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(requests_read)
    os.close(replies_write)
    return _ForkedZygote(pid, requests_write, replies_read)


def _import_node_modules() -> bool:
    """In the launcher, before it forks the zygote: import the node modules of the pipelines Kedro is about to run.

    Kedro would import them a moment later anyway (in ``session.run``, for the pipelines named on the command line),
    so this only moves that work before the fork: the zygote then inherits them instead of importing them again
    beside the launcher. The Pipeline objects built here are dropped, and Kedro builds its own as it always does;
    a pipeline that fails to import is left for Kedro to report. Returns whether the pipelines loaded.
    """
    project = sys.modules.get("kedro.framework.project")
    if project is None or getattr(project, "PACKAGE_NAME", None) is None:
        return False
    names: list[str] | None = None
    click = sys.modules.get("click")
    context = click.get_current_context(silent=True) if click is not None else None
    if context is not None:  # `kedro run --pipeline X` / `--pipelines X,Y`: only what Kedro will load
        params = context.params
        named = [params.get("pipeline"), *(params.get("pipelines") or ())]
        names = [name for name in named if isinstance(name, str) and name] or None
    import warnings

    pipelines = project.pipelines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pipelines.set_requested(names)
            pipelines.keys()
        except Exception:
            return False
        finally:
            forget_loaded_pipelines(pipelines)
    return True


_prestarted: dict[Path, Zygote] = {}


def prestart(project_dir: Path, env: dict[str, str], remote_root: bool = False) -> None:
    """Start the zygote for ``project_dir`` now, so its preloading overlaps the launcher's own start-up
    (``VertexRunner`` does this when it is built, before Kedro loads the pipelines). :func:`take` hands it over."""
    project_dir = project_dir.resolve()
    if project_dir in _prestarted or not available():
        return
    try:
        zygote = Zygote(project_dir, env, remote_root, fork=True)
    except OSError:
        return
    import atexit

    atexit.register(zygote.close)  # never used (e.g. the job went to Vertex AI): stop it with the launcher
    _prestarted[project_dir] = zygote


def take(project_dir: Path) -> Zygote | None:
    """The zygote :func:`prestart` started for ``project_dir``, if it is still alive."""
    zygote = _prestarted.pop(project_dir.resolve(), None)
    if zygote is not None and not zygote.alive:
        zygote.close()
        return None
    return zygote


def enabled(option: bool | None) -> bool:
    """Warm start on or off: ``option`` (runner param or config) when given, else ``KEDRO_VERTEX_WARM_START``, else
    on; never where fork is unavailable."""
    if not available():
        return False
    if option is not None:
        return bool(option)
    from ...values import switch

    return switch(os.environ.get(WARM_START_ENV)) is not False


# ----------------------------------------------------------------------------------------------------------------
# zygote side


def _preload(project_dir: Path, remote_root: bool, project_imported: bool = False) -> None:
    """Import what tasks import, and nothing that holds run state (see the module docstring)."""
    from ...task import entrypoint

    entrypoint._plain_logging(project_dir)  # before kedro.framework.project, which configures logging on import
    steps = [
        lambda: __import__("kedro.framework.session"),
        lambda: __import__("kedro.runner"),
        lambda: __import__("kedro.config"),
        lambda: __import__("pydantic").BaseModel,  # imported lazily when Kedro validates parameters
        lambda: __import__("kedro_vertex_runner.task.persistence"),
        lambda: __import__("kedro_vertex_runner.task.mlflow_run"),
        lambda: _import_project(project_dir, node_modules=not project_imported),
        lambda: _import_hook_plugins(project_dir),
        lambda: _import_dataset_types(project_dir),
    ]
    if remote_root:
        steps.append(lambda: __import__("gcsfs"))
    for step in steps:
        try:
            step()
        except BaseException:  # a task that needs it reports the problem itself, in its own log
            continue
    import gc

    if hasattr(gc, "freeze"):  # keep the preloaded objects' pages shared between children (no collection first:
        gc.freeze()  # on a heap this size it costs a quarter of a second, and the garbage is a few kB per child)


def _import_project(project_dir: Path, node_modules: bool = True) -> None:
    """Bootstrap the project as every task will (dynaconf's settings loader walks the stack with ``inspect``,
    whose module cache a child then inherits warm: a third of a second per task otherwise) and, with
    ``node_modules``, import every node module (unless the launcher did before forking the zygote)."""
    from kedro.framework.project import pipelines, settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_dir)
    _ = settings.CONF_SOURCE  # the settings module is imported lazily
    if not node_modules:
        return
    try:
        pipelines.keys()  # imports every node module; the Pipeline objects built are thrown away below
    finally:
        forget_loaded_pipelines(pipelines)


def _import_hook_plugins(project_dir: Path) -> None:
    """Import the ``kedro.hooks`` plugins the tasks will load (not this plugin's: its import registers resolvers)."""
    import importlib
    from importlib.metadata import entry_points

    from kedro.framework.project import settings

    from ...task import entrypoint

    # kedro-telemetry: every compiled task sets DO_NOT_TRACK, so tasks never load it
    skip = {"kedro-vertex-runner", "kedro-telemetry"}
    skip |= {entrypoint._normalise(name) for name in settings.DISABLE_HOOKS_FOR_PLUGINS}
    if not entrypoint.mlflow_wanted(project_dir / str(settings.CONF_SOURCE)):
        skip.add("kedro-mlflow")
    for ep in entry_points(group="kedro.hooks"):
        dist = getattr(ep, "dist", None)
        if dist is None or entrypoint._normalise(dist.metadata["Name"] or "") in skip:
            continue
        try:
            importlib.import_module(ep.module)
        except Exception:
            continue


def _import_dataset_types(project_dir: Path) -> None:
    """Import the dataset classes the catalog files name (read as plain YAML: no config loader, no resolver)."""
    import yaml
    from kedro.framework.project import settings
    from kedro.io.core import parse_dataset_definition

    types: set[str] = set()
    for path in sorted((project_dir / str(settings.CONF_SOURCE)).glob("*/catalog*.y*ml")):
        try:
            entries = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        for entry in entries.values() if isinstance(entries, dict) else ():
            kind = entry.get("type") if isinstance(entry, dict) else None
            if isinstance(kind, str) and "$" not in kind and "{" not in kind:
                types.add(kind)
    for kind in sorted(types):
        try:
            parse_dataset_definition({"type": kind})
        except Exception:
            continue


def _run_child(
    request: dict[str, Any], zygote_pid: int, protocol: tuple[int, int] = (0, 1), python_state: Any = None
) -> None:
    """In the forked child: become the task, run the entrypoint, exit. Never returns."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        from ...task.processes import become_subreaper, die_with_parent

        die_with_parent(signal.SIGKILL)
        if os.getppid() != zygote_pid:  # the zygote died before the flag was set
            os._exit(1)
        become_subreaper()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        for fd in protocol:
            if fd > 2:
                os.close(fd)
        _unbuffered_stdio()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _reseed("\0".join(request["argv"]), python_state)
        from ...task import entrypoint

        sys.argv = [entrypoint.__file__ or ENTRYPOINT_MODULE, *request["argv"]]
        _configure_logging(Path(request["cwd"]))
        code = entrypoint.main(list(request["argv"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a crash of the task itself, reported in its log
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        from ...task.processes import finish

        # what a fresh interpreter runs at exit, threading's shutdown hooks first: without them multiprocessing's
        # exit handler waited for loky's idle workers (GridSearchCV(n_jobs=-1)) for their 300 s timeout
        finish(code if isinstance(code, int) else 1)


def _unbuffered_stdio() -> None:
    """``sys.stdout``/``sys.stderr`` writing straight to the task's log, as with ``PYTHONUNBUFFERED`` (a forked
    zygote inherits the launcher's, buffered when its output is a pipe): a killed task loses no line."""
    import io

    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        stream = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors=getattr(old, "errors", None) or "backslashreplace",
            write_through=True,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _reseed(key: str, python_state: Any) -> None:
    """Random state of the task's own, derived from the warm-start process's and the task's arguments (see
    :func:`~kedro_vertex_runner.task.runners.fresh_random_state`)."""
    from ...task.runners import fresh_random_state

    fresh_random_state(key, python_state)


def _configure_logging(project_dir: Path) -> None:
    """Configure logging from the task's own environment, as Kedro does when it is first imported."""
    project = sys.modules.get("kedro.framework.project")
    if project is None:
        return
    from ...task import entrypoint

    entrypoint._plain_logging(project_dir, reconfigure=True)
    project.LOGGING.__init__()  # reads KEDRO_LOGGING_CONFIG / conf/logging.yml / the default again


class _Server:
    def __init__(self, requests: int = 0, replies: int = 1) -> None:
        self.requests, self.replies = requests, replies  # the protocol's file descriptors
        self.sweep: str | None = None
        self.pid = os.getpid()
        self.tasks: set[int] = set()
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.replies, data) :]

    def serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.requests], [], [], _REAP_INTERVAL)
            if ready:
                chunk = os.read(self.requests, 65536)
                if not chunk:
                    break
                self.buffer += chunk
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle(json.loads(line))
            self.reap()
        self.shutdown()

    def handle(self, request: dict[str, Any]) -> None:
        if "sweep" in request:
            self.sweep = str(request["sweep"])
        else:
            self.fork(request)

    def fork(self, request: dict[str, Any]) -> None:
        import random

        python_state = random.getstate()  # Python reseeds `random` in a forked child: the task derives from this
        try:
            pid = os.fork()
        except OSError as exc:
            self.send({"key": request["key"], "error": f"fork failed: {exc}"})
            return
        if pid == 0:
            _run_child(request, self.pid, (self.requests, self.replies), python_state)
        self.tasks.add(pid)
        self.send({"key": request["key"], "pid": pid})

    def reap(self) -> None:
        from ...task.processes import children, kill, kill_tree

        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.tasks:
                self.tasks.discard(pid)
                try:  # whatever the task left in its process group goes too, as with a container
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                self.send({"pid": pid, "status": _returncode(status)})
        for child in children(self.pid):
            if child not in self.tasks:  # an orphan adopted from a task that has ended
                kill_tree(child)
                kill(child)

    def shutdown(self) -> None:
        from ...task.processes import Descendants, children, kill_tree

        # stopping already: a further SIGTERM (the launcher's death and a stop request can both send one) must not
        # interrupt the clean-up below
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

        # every descendant as it is now, whatever session it started: a task's child must not escape by being
        # re-parented while its task is stopping
        tree = Descendants()
        tree.track(self.pid)
        for pid in list(self.tasks):
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + _KILL_GRACE
        while self.tasks and time.monotonic() < deadline:
            self.reap_quietly()
            time.sleep(_REAP_INTERVAL)
        for child in children(self.pid):
            try:
                os.killpg(child, signal.SIGKILL)
            except OSError:
                pass
            kill_tree(child)
        tree.kill_left()
        self.reap_quietly()
        if self.sweep:
            from ...task.persistence import sweep_temp_files

            sweep_temp_files(self.sweep)

    def reap_quietly(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.tasks.discard(pid)


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def _closing(fd: int) -> Any:
    """A SIGTERM handler ending the zygote as if the requests pipe ``fd`` had closed (once; a second signal finds
    it closed already)."""

    def close(signum: int, frame: Any) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    return close


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kedro_vertex_runner.backends.local.warm")
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--remote-root", action="store_true", help="preload gcsfs")
    args = parser.parse_args(argv)
    _serve(Path(args.project_dir), args.remote_root, 0, 1)


def _serve(project_dir: Path, remote_root: bool, requests: int, replies: int, project_imported: bool = False) -> None:
    """The zygote's life: preload, then fork a task per request until the requests pipe closes.

    ``project_imported``: forked from a launcher that has bootstrapped the project and imported its node modules
    (:func:`_import_node_modules`), so the zygote need not do that again."""
    from ...task.processes import become_subreaper, die_with_parent

    die_with_parent(signal.SIGTERM)
    become_subreaper()
    server = _Server(requests, replies)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the launcher died (parent-death signal) or stops us: end like a closed stdin, killing every task first
    signal.signal(signal.SIGTERM, _closing(requests))
    _preload(project_dir, remote_root=remote_root, project_imported=project_imported)
    try:
        server.serve()
    except OSError:  # requests closed by the SIGTERM handler
        server.shutdown()


if __name__ == "__main__":
    main()
