"""``kedro vertexai …`` commands: init, compile, run-once, schedule, upload-pipeline, list-pipelines, logs, ui,
rerun, cancel, report, schedules pause/resume/delete.

Thin: each command parses its options and calls the module that does the work. Importing this module (Kedro does
so early, through the ``kedro.project_commands`` entry point) also makes ``--runner=VertexRunner`` resolvable.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import kedro.runner

from .backends import DEFAULT_BACKEND, backend_class, names
from .backends.base import Capability
from .errors import PluginError, exit_with
from .runner import VertexRunner

# `kedro run --runner=VertexRunner` resolves the bare name with load_obj(name, "kedro.runner")
kedro.runner.VertexRunner = VertexRunner  # type: ignore[attr-defined]


def _parse_params(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``--params`` parsed as ``kedro run`` parses it; a malformed value is one ``Error:`` line (no usage text)."""
    from .kedro_compat import split_params as kedro_split_params

    example = "use KEY=VALUE items separated by commas, e.g. --params alpha=0.5,model.depth=3"
    try:
        return kedro_split_params(ctx, param, value)
    except click.UsageError as exc:  # ctx.fail(): an item without '=' or with an empty key
        reason = str(exc.message).split(": ", 1)[-1].replace("`", "'")
        reason = f"{reason[:1].lower()}{reason[1:]} {example[:1].upper()}{example[1:]}"
        raise click.ClickException(f"--params {value!r}: {reason}") from None
    except Exception as exc:  # OmegaConf cannot parse a value, e.g. an unclosed '[' or '{'
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise click.ClickException(f"--params {value!r}: cannot parse it ({first}); {example}") from None


def _user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a ``PluginError`` as one line and exit non-zero instead of showing a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .network import CommandTimeout, command_deadline

        try:
            with command_deadline(f"kedro vertexai {func.__name__.rstrip('_').replace('_', '-')}"):
                return func(*args, **kwargs)
        except PluginError as exc:
            exit_with(exc)
        except CommandTimeout as exc:
            exit_with(exc.as_error())
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


template_option = click.option(
    "--template-uri",
    "template",
    default=None,
    help="Run this pipeline template from Artifact Registry instead of compiling: a URI, or a tag of this "
    "pipeline in run_config.pipeline_registry (default: run_config.template_uri).",
)
backend_option = click.option(
    "--backend",
    "backend_name",
    default=None,
    metavar="NAME",
    help=f"Backend to use, one of {', '.join(names())} (default: run_config.backend when it runs jobs elsewhere, "
    f"else {DEFAULT_BACKEND}).",
)
env_option = click.option("-e", "--env", default=None, help="Kedro configuration environment (default: local).")
pipeline_option = click.option(
    "-p", "--pipeline", "pipeline_name", default="__default__", show_default=True, help="Registered pipeline."
)
params_option = click.option(
    "--params",
    type=click.UNPROCESSED,
    default="",
    callback=_parse_params,
    help="Runtime parameters as with `kedro run`, e.g. `--params alpha=0.5,model.depth=3`.",
)


@click.group(name="kedro-vertex-runner")
def commands() -> None:
    """Entry point for Kedro's project commands."""


@commands.group(name="vertexai")
@env_option
@click.pass_context
def vertexai(ctx: click.Context, env: str | None) -> None:
    """Compile, run and schedule Kedro pipelines on Google Cloud Vertex AI Pipelines."""
    from .values import check_environment

    try:
        check_environment()
    except PluginError as exc:
        exit_with(exc)
    ctx.meta["kedro_vertex_env"] = env


def _env(ctx: click.Context, env: str | None) -> str | None:
    return env or ctx.meta.get("kedro_vertex_env")


class _Job:
    """A Kedro session opened for one command, with the compiled spec on demand."""

    def __init__(
        self,
        env: str | None,
        pipeline_name: str,
        params: dict[str, Any],
        backend: str | None = None,
        capability: Capability | None = None,
    ):
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        from .config import load_config
        from .project import get_pipeline

        project_path = Path.cwd()
        bootstrap_project(project_path)
        self.session = KedroSession.create(project_path=project_path, env=env, runtime_params=params or None)
        if capability is None:  # compile: offline, so kedro-mlflow does not set up its tracking server
            _without_kedro_mlflow(self.session)
        from .mlflow_tracking import launcher_requests, setup_failure

        try:
            with launcher_requests():  # kedro-mlflow's setup asks its tracking server: bounded, one line if it fails
                self.context = self.session.load_context()
        except Exception as exc:
            failure = setup_failure(exc)
            if failure is None:
                raise
            raise failure from None
        self.config = load_config(self.context.config_loader)
        self.backend: str | None = None  # where the spec will run, if known: the MLflow tracking URI must suit it
        if capability is not None:  # a job command: its backend, and whether that backend can do it
            from .backends import get_backend
            from .console import command_backend

            self.backend = command_backend(self.config, backend)
            self.config = self.config.with_backend(self.backend)  # read `root` as that backend does
            get_backend(self.backend, self.config).require(capability)
        elif backend:  # compile for this backend (the spec's form may differ)
            self.config = self.config.with_backend(backend)
        self.pipeline_name = pipeline_name
        self.pipeline = get_pipeline(pipeline_name)
        self.params = params
        self.request: Any = None
        self.template_uri: str | None = None  # run this registry template instead of compiling

    def use_template(self, value: str | None) -> None:
        """Run the registry template ``value`` (``--template-uri``, else ``run_config.template_uri``) if any."""
        value = value or self.config.run_config.template_uri
        if value:
            from kedro.framework.project import PACKAGE_NAME

            from .backends.vertex.template_registry import template_uri
            from .compiler.spec import _pipeline_name

            package = _pipeline_name(PACKAGE_NAME or Path.cwd().name, (self.pipeline_name,))
            self.template_uri = template_uri(value, self.config, package)

    def spec(self) -> dict[str, Any]:
        from .compiler import compile_spec
        from .project import build_request, check_mlflow_backend

        if self.template_uri:
            from .backends.vertex.template_registry import fetch_template

            click.echo(f"Using the pipeline template {self.template_uri}", err=True)
            return fetch_template(self.template_uri, self.config)

        catalog = None
        if self.backend:  # a job command: its tasks must find every input (`compile` only writes a file)
            from .project import check_free_inputs

            try:
                catalog = self.context.catalog
            except Exception:  # built only in the container (credentials): the tasks will say what is missing
                catalog = None
            check_free_inputs(
                self.pipeline,
                catalog,
                project_path=Path(self.context.project_path),
                config=self.config,
                pipeline_names=[self.pipeline_name],
                run_id=None,
                takes_run_id=False,
            )
        self.request = request = build_request(
            self.context,
            self.pipeline,
            pipeline_names=[self.pipeline_name],
            runtime_params=self.params,
            config=self.config,
            catalog=catalog,
            online=bool(self.backend),
        )
        if self.backend:
            check_mlflow_backend(request, self.context, self.backend)
        elif request.mlflow:
            from .mlflow_tracking import project_tracking_uri, refuse_credentials

            refuse_credentials(project_tracking_uri(self.context.config_loader))
        return compile_spec(request)

    def close(self) -> None:
        self.session.close()


def _without_kedro_mlflow(session: Any) -> None:
    """Unregister kedro-mlflow's hooks from ``session``: its ``after_context_created`` sets the tracking URI and
    gets or creates the experiment on the tracking server, which compiling needs no more than any other server."""
    from .kedro_compat import hook_manager

    manager = hook_manager(session)
    for plugin in list(manager.get_plugins()):
        if type(plugin).__module__.startswith("kedro_mlflow."):
            manager.unregister(plugin)


def _open_job(
    env: str | None,
    pipeline_name: str,
    params: dict[str, Any],
    backend: str | None = None,
    capability: Capability | None = None,
) -> _Job:
    from kedro.framework.startup import ProjectMetadata  # noqa: F401 - fail early outside a project

    return _Job(env, pipeline_name, params, backend, capability)


def _backend_config(env: str | None, backend: str | None, capability: Capability) -> tuple[str, Any]:
    """For a command that compiles nothing: the backend it targets and the config as that backend reads it."""
    job = _open_job(env, "__default__", {}, backend, capability)
    job.close()
    return job.backend or DEFAULT_BACKEND, job.config


@vertexai.command()
@click.argument("project_id")
@click.argument("region")
@click.option("--force", is_flag=True, help="Overwrite an existing conf/base/vertexai.yml.")
@click.option("--with-docker", is_flag=True, help="Also write a Dockerfile and .dockerignore for the task image.")
@click.option(
    "--with-github-actions",
    is_flag=True,
    help="Also write .github/workflows/vertexai.yml: build and push the image, run-once on branches, schedule on "
    "the main branch.",
)
@click.option(
    "--main-branch", default="main", show_default=True, help="With --with-github-actions: the branch that schedules."
)
@_user_errors
def init(
    project_id: str, region: str, force: bool, with_docker: bool, with_github_actions: bool, main_branch: str
) -> None:
    """Write conf/base/vertexai.yml for PROJECT_ID and REGION (every key commented)."""
    from .scaffold import init_project

    written = init_project(
        Path.cwd(),
        project_id,
        region,
        force=force,
        with_docker=with_docker,
        with_github_actions=with_github_actions,
        main_branch=main_branch,
    )
    for path in written:
        click.echo(f"Wrote {path}")


@vertexai.command(name="compile")
@env_option
@pipeline_option
@params_option
@click.option("-o", "--output", default="pipeline.json", show_default=True, help="Output file (.json, .yaml or .yml).")
@click.option(
    "--explain",
    is_flag=True,
    help="Also print the tasks, their nodes, the longest chain of dependent tasks, and the estimated makespan "
    "and task count under each grouping.",
)
@click.option(
    "--html",
    "html_file",
    default=None,
    metavar="FILE",
    help="Also write a picture of the configured grouping to FILE (one self-contained HTML page): the tasks with "
    "their nodes, the data between them, the longest chain and the estimated timeline.",
)
@click.option(
    "--list-code",
    is_flag=True,
    help="List the files code upload (run_config.code: upload) ships, and their count, bytes and digest; then "
    "stop: nothing is compiled or uploaded.",
)
@backend_option
@click.pass_context
@_user_errors
def compile_(
    ctx: click.Context,
    env: str | None,
    pipeline_name: str,
    params: dict[str, Any],
    output: str,
    explain: bool,
    html_file: str | None,
    list_code: bool,
    backend_name: str | None,
) -> None:
    """Compile a pipeline to a Vertex AI PipelineSpec file; needs no GCP credentials.

    --backend compiles the form that backend runs (default: run_config.backend)."""
    from .compiler.spec import check_output_path, write_spec

    if list_code:
        _list_code(_env(ctx, env), params)
        return
    if backend_name:
        from .backends import backend_class

        backend_class(backend_name)  # an unknown name is one line, before the session opens
    check_output_path(Path(output))  # before the few seconds a Kedro session takes to open
    job = _open_job(_env(ctx, env), pipeline_name, params, backend_name)
    try:
        path = write_spec(job.spec(), Path(output))
        if explain or html_file:
            from .compiler import cost_model
            from .compiler import explain as explain_request

            reports, model = explain_request(job.request), cost_model(job.request)
        if explain:
            _print_explanation(reports, model, len(job.request.pipeline.nodes), job.request.durations_source)
        if html_file:
            from .pictures import plan_page, write_page

            page = plan_page(reports[0], model, f"Plan of pipeline {pipeline_name!r}", job.request.durations_source)
            click.echo(f"Wrote the picture of the plan to {write_page(page, Path(html_file), '--html')}")
    finally:
        job.close()
    click.echo(f"Compiled pipeline {pipeline_name!r} to {path}")


def _list_code(env: str | None, params: dict[str, Any]) -> None:
    """``compile --list-code``: the files code upload ships, one a line, then what they add up to."""
    from .project import code_package

    job = _open_job(env, "__default__", params)
    try:
        package = code_package(Path(job.context.project_path), job.config)
    finally:
        job.close()
    for name in package.files:
        click.echo(name)
    for line in package.warnings():
        click.echo(f"Warning: {line}", err=True)
    click.echo(f"Code upload would ship {package.summary()} (nothing uploaded)")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _explain_width() -> int:
    """The width ``compile --explain`` wraps to: the terminal's, or 100 columns when output is not a terminal."""
    if sys.stdout.isatty():
        import shutil

        return max(40, shutil.get_terminal_size().columns)
    return 100


def _print_explanation(reports: list[Any], model: Any, nodes: int, source: str = "") -> None:
    """What ``compile --explain`` prints: the configured grouping's tasks, wrapped to the terminal, then one line
    per grouping (a grouping with the same tasks as one above is named, not repeated)."""
    import textwrap

    from .compiler.spec import task_names

    width = _explain_width()

    def echo(text: str, indent: str = "", more: str = "      ") -> None:
        click.echo(textwrap.fill(text, width, initial_indent=indent, subsequent_indent=more, break_on_hyphens=False))

    chosen = reports[0]
    measured = chosen.estimate.measured if chosen.estimate else 0
    extra = max(model.extra_startup.values(), default=0.0)  # a CustomJob task waits for its own machine
    custom = f" (+{_duration(extra)} for a task with machine settings)" if extra else ""
    echo(
        f"Cost model: {_duration(model.task_startup)} start-up per task{custom}; node run times: {measured} of {nodes} "
        f"from {source or 'the last local run'}, the others {_duration(model.node_duration)} each",
        more="  ",
    )
    click.echo(f"Tasks (grouping {chosen.mode!r}):")
    names = task_names(list(chosen.groups))
    number = {group.key: i for i, group in enumerate(chosen.groups, 1)}
    for i, (group, name) in enumerate(zip(chosen.groups, names, strict=True), 1):
        count = len(group.nodes)
        line = f"task {i} {name!r} ({count} node{'s' if count != 1 else ''}): {', '.join(group.node_names)}"
        if group.dependencies:
            after = ", ".join(str(number[key]) for key in group.dependencies)
            line += f"; after task{'s' if len(group.dependencies) > 1 else ''} {after}"
        echo(line, indent="  ")
    if chosen.estimate is not None:
        name_of = dict(zip((group.key for group in chosen.groups), names, strict=True))
        chain = " -> ".join(name_of[key] for key in chosen.estimate.critical_path)
        echo(f"Longest chain of dependent tasks: {chain}", more="  ")
    click.echo("Grouping     tasks  longest chain  estimated makespan")
    seen: dict[frozenset[frozenset[str]], str] = {}
    for report in reports:
        if report.estimate is None:
            echo(f"{report.mode:<10} refused: {report.error}", indent="  ")
            continue
        tasks = frozenset(frozenset(group.node_names) for group in report.groups)
        if tasks in seen:
            click.echo(f"  {report.mode:<10} the same tasks as {seen[tasks]}")
            continue
        seen[tasks] = report.mode
        found = report.estimate
        click.echo(
            f"  {report.mode:<10} {found.tasks:>5}  {len(found.critical_path):>13}  {_duration(found.makespan):>18}"
        )


@vertexai.command(name="run-once")
@env_option
@pipeline_option
@params_option
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the job's tasks until it ends and exit non-zero unless it succeeds; --no-wait returns once "
    "the job is submitted.",
)
@click.option("--cancel-on-interrupt", is_flag=True, help="On Ctrl-C while waiting, cancel the job without asking.")
@template_option
@backend_option
@click.pass_context
@_user_errors
def run_once(
    ctx: click.Context,
    env: str | None,
    pipeline_name: str,
    params: dict[str, Any],
    wait: bool,
    cancel_on_interrupt: bool,
    template: str | None,
    backend_name: str | None,
) -> None:
    """Compile a pipeline and submit it to Vertex AI Pipelines (or --backend) as one run.

    Waits for the job by default, showing each task's state; Ctrl-C asks whether to cancel the job.
    """
    from .project import run_on_backend

    capability = Capability.RUN if wait else Capability.SUBMIT
    job = _open_job(_env(ctx, env), pipeline_name, params, backend_name, capability)
    try:
        job.use_template(template)
        spec = job.spec()
        templated = job.template_uri is not None  # nothing compiled: the params go with the job
        run_on_backend(
            spec,
            None if templated else job.request,
            job.context,
            backend=job.backend or DEFAULT_BACKEND,
            wait=wait,
            cancel_on_interrupt=cancel_on_interrupt,
            params=params if templated else None,
            template_uri=job.template_uri,
            config=job.config,
            pipeline_name=pipeline_name,
        )
    finally:
        job.close()


@vertexai.command()
@env_option
@pipeline_option
@params_option
@click.option("--cron", default=None, help="Five-field cron expression, e.g. '0 6 * * *'.")
@click.option("--timezone", default=None, help="IANA time zone of --cron, e.g. Europe/Warsaw.")
@click.option("--schedule", "schedule_name", default=None, help="Use the named entry of run_config.schedules.")
@template_option
@backend_option
@click.pass_context
@_user_errors
def schedule(
    ctx: click.Context,
    env: str | None,
    pipeline_name: str,
    params: dict[str, Any],
    cron: str | None,
    timezone: str | None,
    schedule_name: str | None,
    template: str | None,
    backend_name: str | None,
) -> None:
    """Create a recurring schedule; replaces earlier schedules with the same display name.

    Give --cron (and --timezone), or --schedule NAME to use run_config.schedules.NAME (its pipeline and params
    apply; --pipeline and --params override them). The display name is run_config.scheduled_run_name or the
    pipeline's name.
    """
    from .console import create_schedule

    def open_job(env: str | None, pipeline_name: str, params: dict[str, Any]) -> _Job:
        job = _open_job(env, pipeline_name, params, backend_name, Capability.SCHEDULE)
        job.use_template(template)
        return job

    pipeline_given = ctx.get_parameter_source("pipeline_name") is click.core.ParameterSource.COMMANDLINE
    job = open_job(_env(ctx, env), pipeline_name, params)
    try:
        job, cron, timezone, options = _schedule_options(
            job, open_job, _env(ctx, env), cron, timezone, schedule_name, pipeline_given
        )
        # offline checks first: a bad cron is the news, not missing credentials or an upload
        backend_class(job.backend or DEFAULT_BACKEND).check_schedule(cron, timezone)
        spec = job.spec()
    finally:
        job.close()
    create_schedule(
        spec,
        job.config,
        cron=cron,
        timezone_name=timezone,
        template_uri=job.template_uri,
        backend=job.backend,
        **options,
    )


def _schedule_options(
    job: _Job,
    open_job: Callable[[str | None, str, dict[str, Any]], _Job],
    env: str | None,
    cron: str | None,
    timezone: str | None,
    schedule_name: str | None,
    pipeline_given: bool,
) -> tuple[_Job, str, str | None, dict[str, Any]]:
    """``--cron``/``--timezone``, or a named entry of ``run_config.schedules``: the job to compile (reopened when
    the entry names another pipeline or params), the cron, the time zone and the entry's other settings.

    A named schedule's ``pipeline`` applies unless ``--pipeline`` names another (``pipeline_given``, even as
    ``__default__``); ``--params`` override its ``params``."""
    config = job.config
    _check_schedule_options(cron, timezone)
    if not schedule_name:
        if not cron:
            known = ", ".join(sorted(config.run_config.schedules))
            hint = f" (run_config.schedules defines {known})" if known else ""
            raise PluginError(f"give --cron EXPRESSION or --schedule NAME{hint}")
        return job, cron, timezone, {}
    if cron:
        raise PluginError("give either --cron or --schedule, not both")
    entry = config.run_config.schedules.get(schedule_name)
    if entry is None:
        known = ", ".join(sorted(config.run_config.schedules)) or "none"
        raise PluginError(f"--schedule {schedule_name!r}: run_config.schedules defines {known}")
    options = {
        "start_time": entry.start_time,
        "end_time": entry.end_time,
        "max_run_count": entry.max_run_count,
        "max_concurrent_run_count": entry.max_concurrent_run_count,
        "max_concurrent_active_run_count": entry.max_concurrent_active_run_count,
        "allow_queueing": entry.allow_queueing,
    }
    wanted_pipeline = entry.pipeline if entry.pipeline and not pipeline_given else job.pipeline_name
    wanted_params = {**entry.params, **job.params}
    if wanted_pipeline != job.pipeline_name or wanted_params != job.params:
        job.close()
        job = open_job(env, wanted_pipeline, wanted_params)
    return job, entry.cron, timezone or entry.timezone, options


def _check_schedule_options(cron: str | None, timezone: str | None) -> None:
    """``--cron`` (a five-field one: a backend may take another form, e.g. KFP's six fields) and ``--timezone``,
    checked before anything is compiled."""
    from .config.rules import check_timezone, validate_cron

    try:
        if cron is not None and len(cron.split()) != 6:
            validate_cron(cron)
    except ValueError as exc:
        raise PluginError(f"--cron: {exc}") from None
    try:
        if timezone is not None:
            check_timezone(timezone)
    except ValueError as exc:
        raise PluginError(f"--timezone: {exc}") from None


@vertexai.command(name="upload-pipeline")
@env_option
@pipeline_option
@params_option
@click.option("--tag", "tags", multiple=True, help="Tag the uploaded version (repeatable), e.g. --tag prod.")
@backend_option
@click.pass_context
@_user_errors
def upload_pipeline(
    ctx: click.Context,
    env: str | None,
    pipeline_name: str,
    params: dict[str, Any],
    tags: tuple[str, ...],
    backend_name: str | None,
) -> None:
    """Compile a pipeline and upload it as a template to run_config.pipeline_registry (Artifact Registry), or as
    a new version of a named pipeline of --backend."""
    from .console import open_backend

    job = _open_job(_env(ctx, env), pipeline_name, params, backend_name, Capability.UPLOAD)
    engine = open_backend(job.config, job.backend)
    try:
        engine.check_upload()  # before compiling: a missing setting is the first thing to hear about
        spec = job.spec()
    finally:
        job.close()
    uploaded = engine.upload(spec, pipeline_name, list(tags))
    shown = f" (tags: {', '.join(tags)})" if tags else ""
    click.echo(f"Uploaded pipeline template {uploaded.pipeline} version {uploaded.version}{shown}")
    if uploaded.uri:
        click.echo(f"Template URI: {uploaded.uri}")


@vertexai.command(name="list-pipelines")
@env_option
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many recent jobs to show."
)
@backend_option
@click.pass_context
@_user_errors
def list_pipelines(ctx: click.Context, env: str | None, limit: int, backend_name: str | None) -> None:
    """List recent pipeline jobs (state and link) and schedules."""
    from .console import list_jobs_and_schedules

    backend, config = _backend_config(_env(ctx, env), backend_name, Capability.LIST)
    list_jobs_and_schedules(config, limit=limit, backend=backend)


@vertexai.command()
@env_option
@click.argument("job_id")
@click.option("--task", "task", default=None, help="Task name as the console shows it (default: every failed task).")
@click.option(
    "--lines",
    default=20,
    show_default=True,
    type=click.IntRange(min=1, max=1000),
    help="How many of the last lines to show (at most 1000).",
)
@backend_option
@click.pass_context
@_user_errors
def logs(
    ctx: click.Context, env: str | None, job_id: str, task: str | None, lines: int, backend_name: str | None
) -> None:
    """Show the last lines of a Vertex AI job's task log from Cloud Logging (needs roles/logging.viewer).

    JOB_ID is the job id printed on submit (or its full resource name). Without --task, shows every failed task.
    """
    from .config.rules import check_job_id
    from .console import show_logs

    try:
        check_job_id(job_id)
    except ValueError as exc:
        raise PluginError(f"JOB_ID {exc}") from None
    backend, config = _backend_config(_env(ctx, env), backend_name, Capability.LOGS)
    show_logs(config, job_id, task=task, lines=lines, backend=backend)


@vertexai.command()
@env_option
@backend_option
@click.pass_context
@_user_errors
def ui(ctx: click.Context, env: str | None, backend_name: str | None) -> None:
    """Open the Vertex AI Pipelines page of the console (prints the URL without a browser)."""
    from .console import open_ui

    backend, config = _backend_config(_env(ctx, env), backend_name, Capability.UI)
    open_ui(config, backend=backend)


wait_option = click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the job's tasks until it ends and exit non-zero unless it succeeds; --no-wait returns once "
    "the job is submitted.",
)


@vertexai.command()
@env_option
@click.argument("job_id")
@pipeline_option
@params_option
@wait_option
@click.option("--cancel-on-interrupt", is_flag=True, help="On Ctrl-C while waiting, cancel the job without asking.")
@backend_option
@click.pass_context
@_user_errors
def rerun(
    ctx: click.Context,
    env: str | None,
    job_id: str,
    pipeline_name: str,
    params: dict[str, Any],
    wait: bool,
    cancel_on_interrupt: bool,
    backend_name: str | None,
) -> None:
    """Rerun failed Vertex AI job JOB_ID from its failed tasks: a new job runs them and what depends on them,
    reading the stored data of the job's succeeded tasks (which are not run again).

    The pipeline is compiled now, with -p, -e and --params as the job ran with: it must have the job's tasks and
    runtime parameters."""
    from .config.rules import check_job_id
    from .console import rerun_failed

    try:
        check_job_id(job_id)
    except ValueError as exc:
        raise PluginError(f"JOB_ID {exc}") from None
    job = _open_job(_env(ctx, env), pipeline_name, params, backend_name, Capability.RUN if wait else Capability.SUBMIT)
    try:
        from .backends.base import Backend

        chosen = backend_class(job.backend or DEFAULT_BACKEND)
        if chosen.rerun is Backend.rerun:  # refused before anything is compiled
            raise PluginError(f"backend {chosen.name!r} cannot rerun a job's failed tasks: use --backend vertex")
        spec = job.spec()
    finally:
        job.close()
    rerun_failed(
        spec,
        job.config,
        job_id,
        pipeline_name=pipeline_name,
        params=params,
        wait=wait,
        cancel_on_interrupt=cancel_on_interrupt,
        backend=job.backend,
    )


@vertexai.command()
@env_option
@click.argument("run_or_job")
@click.option("-o", "--output", default=None, metavar="FILE", help="Where to write it (default: report-<id>.html).")
@backend_option
@click.pass_context
@_user_errors
def report(ctx: click.Context, env: str | None, run_or_job: str, output: str | None, backend_name: str | None) -> None:
    """Write a picture of a run (one self-contained HTML page): its tasks' timeline, states, attempts and nodes.

    RUN_OR_JOB: a local run id (the local backend), or a Vertex AI job or Kubeflow run id."""
    from .pictures import run_report

    path = Path(output or f"report-{run_or_job.rstrip('/').rsplit('/', 1)[-1]}.html")
    if backend_name:
        backend_class(backend_name)  # an unknown name is one line, before the session opens
    job = _open_job(_env(ctx, env), "__default__", {})
    job.close()
    backend = backend_class(backend_name or job.config.run_config.backend).name  # local runs too, unlike `logs`
    config = job.config.with_backend(backend)
    click.echo(f"Wrote the picture of {run_or_job} to {run_report(config, backend, run_or_job, path)}")


@vertexai.command()
@env_option
@click.argument("job_id")
@backend_option
@click.pass_context
@_user_errors
def cancel(ctx: click.Context, env: str | None, job_id: str, backend_name: str | None) -> None:
    """Cancel Vertex AI job JOB_ID (the id printed on submit, or its full resource name)."""
    from .config.rules import check_job_id
    from .console import cancel_job

    try:
        check_job_id(job_id)
    except ValueError as exc:
        raise PluginError(f"JOB_ID {exc}") from None
    backend, config = _backend_config(_env(ctx, env), backend_name, Capability.SUBMIT)
    cancel_job(config, job_id, backend=backend)


@vertexai.group()
def schedules() -> None:
    """Pause, resume or delete schedules by name (`kedro vertexai schedule` creates them)."""


def _schedule_name(config: Any, name: str) -> tuple[str, bool]:
    """The display name ``name`` stands for (an entry of ``run_config.schedules`` stands for the display name
    ``schedule --schedule NAME`` gives, else ``name`` as it is) and the entry's ``catch_up``."""
    if not name.strip():
        raise PluginError(
            "NAME: give a schedule's name as list-pipelines shows it, or an entry of run_config.schedules"
        )
    entry = config.run_config.schedules.get(name)
    if entry is None:
        return name, False
    from kedro.framework.project import PACKAGE_NAME

    from .compiler.spec import _pipeline_name

    project = PACKAGE_NAME or Path.cwd().name
    display = config.run_config.scheduled_run_name or _pipeline_name(project, (entry.pipeline or "__default__",))
    return display, entry.catch_up


def _schedule_command(
    action: str, ctx: click.Context, env: str | None, name: str, backend_name: str | None, catch_up: bool | None = None
) -> None:
    from .console import change_schedule

    backend, config = _backend_config(_env(ctx, env), backend_name, Capability.SCHEDULE)
    display, configured = _schedule_name(config, name)
    change_schedule(config, display, action, catch_up=configured if catch_up is None else catch_up, backend=backend)


@schedules.command(name="pause")
@env_option
@click.argument("name")
@backend_option
@click.pass_context
@_user_errors
def schedules_pause(ctx: click.Context, env: str | None, name: str, backend_name: str | None) -> None:
    """Pause the schedules called NAME (as list-pipelines shows it, an id, or an entry of run_config.schedules)."""
    _schedule_command("pause", ctx, env, name, backend_name)


@schedules.command(name="resume")
@env_option
@click.argument("name")
@click.option(
    "--catch-up/--no-catch-up",
    default=None,
    help="Start the runs missed while paused (default: the entry's catch_up in run_config.schedules, else no).",
)
@backend_option
@click.pass_context
@_user_errors
def schedules_resume(
    ctx: click.Context, env: str | None, name: str, catch_up: bool | None, backend_name: str | None
) -> None:
    """Resume the paused schedules called NAME (as list-pipelines shows it, an id, or an entry of
    run_config.schedules)."""
    _schedule_command("resume", ctx, env, name, backend_name, catch_up)


@schedules.command(name="delete")
@env_option
@click.argument("name")
@backend_option
@click.pass_context
@_user_errors
def schedules_delete(ctx: click.Context, env: str | None, name: str, backend_name: str | None) -> None:
    """Delete the schedules called NAME (as list-pipelines shows it, an id, or an entry of run_config.schedules)."""
    _schedule_command("delete", ctx, env, name, backend_name)
