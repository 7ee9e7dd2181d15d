"""``kedro vertexai init``: write a starting ``conf/base/vertexai.yml`` (optionally a Dockerfile, a CI workflow).

The files come from the package's templates (``conf_templates/`` in the source tree, shipped as
``kedro_vertex_runner.templates``) with ``{{ name }}`` placeholders filled in. The rendered config is validated
before anything is written, so a fresh ``vertexai.yml`` always loads as-is and a bad project id or region is
reported at once instead of at the first compile. Existing files are never overwritten without ``force``.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import resources
from pathlib import Path

from .errors import PluginError

TEMPLATES = "kedro_vertex_runner.templates"
CONFIG_TEMPLATE = "vertexai.yml"
DOCKER_TEMPLATES = ("Dockerfile", ".dockerignore")
# GitHub Actions workflow: template name -> path in the project
WORKFLOW_TEMPLATES = {"github-workflow-vertexai.yml": ".github/workflows/vertexai.yml"}
_PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")


def init_project(
    project_path: str | Path,
    project_id: str,
    region: str,
    force: bool = False,
    with_docker: bool = False,
    with_github_actions: bool = False,
    main_branch: str = "main",
) -> list[Path]:
    """Write ``conf/base/vertexai.yml`` (and with ``with_docker`` a ``Dockerfile`` and ``.dockerignore``).

    Args:
        project_path: root of a Kedro project (holds a ``pyproject.toml`` with a ``[tool.kedro]`` table).
        project_id: Google Cloud project id, also used for the default image and bucket names.
        region: Vertex AI region, e.g. ``europe-west1``.
        force: overwrite files that already exist.
        with_docker: also write the Dockerfile and .dockerignore at the project root.
        with_github_actions: also write ``.github/workflows/vertexai.yml`` (build, push, run-once / schedule).
        main_branch: the branch whose pushes schedule the pipeline; pushes to other branches run it once.

    Returns:
        The written files, in the order written.

    Raises:
        PluginError: outside a Kedro project, for an invalid project id or region, or when a file exists and
            ``force`` is not set (nothing is written then).
    """
    from .config import check_project_id, check_region, validate_config

    for what, value, check in (("PROJECT_ID", project_id, check_project_id), ("REGION", region, check_region)):
        try:
            check(value)  # before the value goes into YAML: a newline or '#' would break or cut it there
        except ValueError as exc:
            raise PluginError(f"kedro vertexai init: {what}: {exc}") from None
    project_path = Path(project_path).resolve()
    package_name = _kedro_package_name(project_path)
    values = template_values(project_id, region, package_name)
    values["main_branch"] = _branch_name(main_branch)

    targets = {project_path / "conf" / "base" / "vertexai.yml": CONFIG_TEMPLATE}
    if with_docker:
        targets.update({project_path / name: name for name in DOCKER_TEMPLATES})
    if with_github_actions:
        targets.update({project_path / path: name for name, path in WORKFLOW_TEMPLATES.items()})
    if not force:
        # the other spelling counts too: both files would be merged and their keys clash
        existing = [path for path in targets if path.exists()]
        existing += [p for p in [project_path / "conf" / "base" / "vertexai.yaml"] if p.exists()]
        if existing:
            raise PluginError(
                f"{_relative(existing[0], project_path)} already exists: edit it, or run `kedro vertexai init` "
                "again with --force to overwrite it"
            )

    rendered = {path: render(name, values) for path, name in targets.items()}
    config_text = rendered[project_path / "conf" / "base" / "vertexai.yml"]
    import yaml

    loaded = yaml.safe_load(config_text)
    if (loaded.get("project_id"), loaded.get("region")) != (project_id, region):  # pragma: no cover - a template bug
        raise PluginError("kedro vertexai init: the rendered vertexai.yml does not read back as written")
    try:
        validate_config(loaded, [])
    except PluginError as exc:
        # the template is valid for good input: what fails is a value derived from the arguments or the project
        reason = str(exc).split(": ", 1)[-1]
        raise PluginError(f"kedro vertexai init {project_id} {region}: {reason}") from None

    written = []
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def template_values(project_id: str, region: str, package_name: str) -> dict[str, str]:
    """Placeholder values derived from the project: image and bucket names follow the project's name."""
    from . import __version__

    slug = re.sub(r"[^a-z0-9-]+", "-", package_name.lower()).strip("-") or "kedro-project"
    package_name = re.sub(r"[^\w.-]+", "-", package_name, flags=re.ASCII)  # it lands in YAML comments: one plain word
    # a domain-scoped project (example.com:my-project) is example.com/my-project in Artifact Registry paths
    image_base = f"{region}-docker.pkg.dev/{project_id.replace(':', '/')}/{slug}/{slug}"
    return {
        "project_id": project_id,
        "region": region,
        "project_name": package_name,
        "image_base": image_base,
        "registry": f"{region}-docker.pkg.dev",
        "image": f"{image_base}:latest",
        "root": f"gs://{project_id.rpartition(':')[2]}-vertex-pipelines/{slug}",
        "experiment": slug,
        "plugin_requirement": f"=={__version__}" if "dev" not in __version__ else "",
        "backend_settings": backend_settings_template(),
    }


def backend_settings_template() -> str:
    """The ``run_config.<name>`` sections of the config template, one per registered backend with settings: the
    ``TEMPLATE`` its settings module writes, else every key of its ``SETTINGS`` model commented out with its
    description (see :mod:`.backends.settings`)."""
    from .backends import names
    from .backends.settings import section_model, settings_module

    sections = []
    for name in names():
        text = getattr(settings_module(name), "TEMPLATE", None)
        model = section_model(name)
        if text is None and model is not None:
            title = (model.__doc__ or f"Backend {name}").strip().splitlines()[0].rstrip(".")
            lines = [f"  # {title} (`backend: {name}`).", f"  # {name}:"]
            for key, field in model.model_fields.items():
                default = field.get_default(call_default_factory=True)
                shown = "" if default is None else f" {json.dumps(default)}"
                lines.append(f"  #   {key}:{shown}   # {field.description or ''}".rstrip())
            text = "\n".join(lines)
        if text:
            sections.append(text.rstrip("\n"))
    return "\n\n".join(sections)


def render(template_name: str, values: dict[str, str]) -> str:
    """The template's text with every ``{{ name }}`` replaced; an unknown placeholder is a bug in the template."""
    text = resources.files(TEMPLATES).joinpath(template_name).read_text(encoding="utf-8")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _branch_name(name: str) -> str:
    """A git branch name safe to quote in the workflow's ``if:`` expressions; anything else is one-line error."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", name) or ".." in name or name.endswith((".lock", "/")):
        raise PluginError(f"--main-branch {name!r}: expected a git branch name such as main or master")
    return name


def _kedro_package_name(project_path: Path) -> str:
    """The project's package name from ``pyproject.toml``'s ``[tool.kedro]``; raises outside a Kedro project."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    pyproject = project_path / "pyproject.toml"
    hint = "run `kedro vertexai init` from the root of a Kedro project (where pyproject.toml has [tool.kedro])"
    if not pyproject.is_file():
        raise PluginError(f"{project_path}: no pyproject.toml here: {hint}")
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PluginError(f"{pyproject}: cannot be parsed ({exc}): fix it first") from None
    kedro = data.get("tool", {}).get("kedro")
    if not isinstance(kedro, dict):
        raise PluginError(f"{pyproject}: no [tool.kedro] table: {hint}")
    return str(kedro.get("package_name") or kedro.get("project_name") or project_path.name)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
