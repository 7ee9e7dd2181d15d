"""Code upload (``run_config.code: upload``): ship the project's code and configuration with the job, so one image
holding only the dependencies serves every code change.

At submit time (``kedro run --runner=VertexRunner``, ``kedro vertexai run-once`` / ``schedule`` / ``compile``) the
project is packaged as one ``.tar.gz``: ``pyproject.toml`` (and ``requirements.txt``), the package under the
source dir (``src/<package>/``) and ``conf/``. Left out, always: ``conf/local``, every file whose name contains
``credentials``, ``*.pem``, ``.env`` files, service-account key files, caches; and whatever the project's
``.gitignore`` and ``.dockerignore`` exclude (gitignore syntax, through :mod:`pathspec`). Credentials must not reach
storage: the built-in exclusions cannot be re-included by a ``!pattern`` of those files.

The archive is deterministic (sorted members, zeroed times and owners, fixed modes, gzip without a timestamp), so
the same code always gives the same bytes. It is stored content-addressed at ``<root>/code/<sha256>/code.tar.gz``:
an unchanged project uploads nothing, and the compiled spec — whose tasks get ``--code-uri=<that URI>`` — stays
byte-identical for the same code.

In the task (:func:`unpack`), the entrypoint reads the archive, checks its sha256 against the URI, unpacks it into
a fresh scratch directory and runs the project from there (Kedro puts its ``src/`` first on ``sys.path``). Entries
of the task's working directory that the archive does not hold (``data/``, and ``conf/local`` on a laptop) are
linked into the scratch directory, so relative catalog paths mean what they mean without code upload. This module
is imported in the task only when ``--code-uri`` is given, and imports neither kfp nor aiplatform.
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import PluginError

CODE_DIR = "code"
ARCHIVE_NAME = "code.tar.gz"
# never uploaded, whatever .gitignore/.dockerignore say
ALWAYS_EXCLUDED = (
    "conf/local/",
    "*credentials*",
    "*.pem",
    ".env",
    ".env.*",
    "*service-account*.json",
    "*-key.json",
    "__pycache__/",
    "*.py[cod]",
    ".ipynb_checkpoints/",
    "*.egg-info/",
)
IGNORE_FILES = (".gitignore", ".dockerignore")
_URI = re.compile(rf"/{CODE_DIR}/([0-9a-f]{{64}})/{re.escape(ARCHIVE_NAME)}$")


@dataclass(frozen=True)
class CodePackage:
    """The packaged project: the archive's bytes, their sha256 and the member names (sorted)."""

    data: bytes
    digest: str
    files: tuple[str, ...]

    def uri(self, root: str) -> str:
        """Where this package lives under the storage ``root``: ``<root>/code/<sha256>/code.tar.gz``."""
        return f"{root.rstrip('/')}/{CODE_DIR}/{self.digest}/{ARCHIVE_NAME}"


# ---------------------------------------------------------------------------------------------------------------
# packaging (launcher side)


def project_files(project_dir: Path, package_name: str, source_dir: str = "src") -> list[str]:
    """The files code upload ships, as sorted POSIX paths relative to ``project_dir``.

    Raises:
        PluginError: the package directory is missing.
    """
    import pathspec

    package_dir = project_dir / source_dir / package_name
    if not package_dir.is_dir():
        raise PluginError(
            f"run_config.code: upload: no package at {package_dir}: check [tool.kedro] package_name and source_dir "
            "in pyproject.toml"
        )
    always = pathspec.PathSpec.from_lines("gitwildmatch", ALWAYS_EXCLUDED)
    lines: list[str] = []
    for name in IGNORE_FILES:
        path = project_dir / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    ignored = pathspec.PathSpec.from_lines("gitwildmatch", lines)

    candidates = [name for name in ("pyproject.toml", "requirements.txt") if (project_dir / name).is_file()]
    for top in (package_dir, project_dir / "conf"):
        if top.is_dir():
            candidates += [
                path.relative_to(project_dir).as_posix()
                for path in top.rglob("*")
                if path.is_file() and not path.is_symlink()
            ]
    return sorted(name for name in set(candidates) if not always.match_file(name) and not ignored.match_file(name))


def package_project(project_dir: Path, package_name: str, source_dir: str = "src") -> CodePackage:
    """Package the project's code and configuration as a deterministic ``.tar.gz`` (see the module docstring)."""
    files = project_files(project_dir, package_name, source_dir)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in files:
            path = project_dir / name
            content = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as stream:
        stream.write(raw.getvalue())
    data = compressed.getvalue()
    return CodePackage(data=data, digest=hashlib.sha256(data).hexdigest(), files=tuple(files))


def code_root(root: str, project_dir: Path) -> str:
    """The storage root as tasks see it: a URL as given, a local directory made absolute against the project."""
    if "://" in root:
        return root.rstrip("/")
    path = Path(root).expanduser()
    return str(path if path.is_absolute() else (project_dir / path).resolve())


def upload(package: CodePackage, uri: str) -> bool:
    """Store ``package`` at ``uri`` unless it is there already; returns whether anything was uploaded."""
    from .storage import bounded_options, url_to_fs

    fs, path = url_to_fs(uri, **bounded_options(uri))
    try:
        if fs.exists(path):
            return False
        parent = path.rsplit("/", 1)[0]
        if "://" not in uri:
            fs.makedirs(parent, exist_ok=True)
        # one object upload (or a rename locally): a task never sees a partial archive
        if "://" in uri:
            fs.pipe_file(path, package.data)
        else:
            temp = f"{path}.{os.getpid()}.tmp"
            fs.pipe_file(temp, package.data)
            os.replace(temp, path)
    except PluginError:
        raise
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise PluginError(
            f"run_config.code: upload: cannot store the project's code at {uri} ({reason}): check run_config.root "
            "and your access to it"
        ) from None
    return True


def prepare(project_dir: Path, package_name: str, source_dir: str, root: str, backend: str) -> str:
    """Package and upload the project; returns the archive's URI for the tasks (``--code-uri``).

    Prints one line saying whether the code was uploaded or was there already, and one warning line when the
    project's requirements differ from what the tasks have: for a backend running tasks on this machine, the
    packages installed here; elsewhere, the requirements of the previous upload (the image was built for those).
    """
    from .backends import backend_class
    from .storage import require

    root = code_root(root, project_dir)
    require(root)  # s3:// without s3fs: one line before packaging anything
    package = package_project(project_dir, package_name, source_dir)
    uri = package.uri(root)
    if upload(package, uri):
        print(f"Uploaded the project's code ({len(package.files)} files) to {uri}", file=sys.stderr)
    else:
        print(f"The project's code is unchanged: using {uri}", file=sys.stderr)
    if not backend_class(backend).remote_tasks:  # the tasks use the packages installed here
        warning = unsatisfied_warning(requirements(project_dir))
    else:
        warning = requirements_warning(project_dir, root, package)
    if warning:
        print(f"Warning: {warning}", file=sys.stderr)
    return uri


# ---------------------------------------------------------------------------------------------------------------
# dependencies that changed


def requirements(project_dir: Path) -> list[str]:
    """The project's declared requirements: ``[project].dependencies`` and ``requirements.txt``, normalised."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    found: list[str] = []
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
            found += list(table.get("dependencies", []))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            pass
    listed = project_dir / "requirements.txt"
    if listed.is_file():
        found += [
            line.split("#", 1)[0].strip()
            for line in listed.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip() and not line.strip().startswith(("#", "-"))
        ]
    return sorted({" ".join(item.split()) for item in found if item.strip()})


def requirements_warning(project_dir: Path, root: str, package: CodePackage) -> str | None:
    """A one-line warning when the requirements differ from those of the previous upload to ``root``.

    The image is built from the requirements (see the Dockerfile's ``deps`` target); when they change, the image
    needs a rebuild before the uploaded code can import what was added. The last upload's requirements are kept
    next to the code (``<root>/code/requirements.txt``).
    """
    from .storage import bounded_options, url_to_fs

    current = requirements(project_dir)
    record = f"{root.rstrip('/')}/{CODE_DIR}/requirements.txt"
    try:
        fs, path = url_to_fs(record, **bounded_options(record))
        previous = fs.cat_file(path).decode("utf-8").splitlines() if fs.exists(path) else None
        if previous != current:
            if "://" not in record:
                fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            fs.pipe_file(path, ("\n".join(current) + "\n").encode("utf-8") if current else b"")
    except Exception:  # bookkeeping only: never fails a submit
        return None
    if previous is None or previous == current:
        return None
    added = sorted(set(current) - set(previous))
    removed = sorted(set(previous) - set(current))
    changes = "; ".join(part for part in (
        f"added {', '.join(added)}" if added else "", f"removed {', '.join(removed)}" if removed else ""
    ) if part)  # fmt: skip
    return (
        f"the project's requirements changed since the last code upload ({changes}): rebuild and push the image "
        "(docker build --target deps …) before the tasks need them"
    )


def unsatisfied_warning(wanted: list[str]) -> str | None:
    """A one-line warning naming the requirements this Python environment does not satisfy (local backend)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for text in wanted:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            missing.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (installed: {installed})")
    if not missing:
        return None
    return (
        f"the project requires {', '.join(missing)}, which this environment does not have: the local tasks may "
        "fail to import it; install the project's dependencies"
    )


# ---------------------------------------------------------------------------------------------------------------
# unpacking (task side)


def digest_of(uri: str) -> str:
    """The sha256 named by a code URI; raises for anything else."""
    match = _URI.search(uri)
    if not match:
        raise PluginError(
            f"--code-uri={uri}: expected <root>/{CODE_DIR}/<sha256>/{ARCHIVE_NAME}, as the compiler writes it"
        )
    return match.group(1)


def _read(uri: str) -> bytes:
    from .storage import url_to_fs

    try:
        fs, path = url_to_fs(uri)
        return fs.cat_file(path)
    except FileNotFoundError:
        raise PluginError(
            f"--code-uri={uri}: no such archive: it is uploaded when the job is submitted; submit the job again"
        ) from None
    except Exception as exc:
        raise PluginError(f"--code-uri={uri}: cannot read it ({' '.join(str(exc).split())[:300]})") from None


def unpack(uri: str, workdir: Path, scratch: Path | None = None) -> Path:
    """Fetch the archive at ``uri``, check it, unpack it into a new scratch directory and return that directory.

    Entries of ``workdir`` (the task's working directory, when it is a Kedro project) that the archive does not
    hold are symlinked into it, and so is ``conf/local``: relative catalog paths keep their meaning.
    """
    digest = digest_of(uri)
    data = _read(uri)
    if hashlib.sha256(data).hexdigest() != digest:
        raise PluginError(f"--code-uri={uri}: the archive's sha256 does not match its name: submit the job again")
    target = Path(tempfile.mkdtemp(prefix=f"kedro-code-{digest[:12]}-", dir=scratch))
    # removed when the task ends; links inside are unlinked, never followed
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise PluginError(f"--code-uri={uri}: unsafe entry {member.name!r} in the archive")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:  # Python before 3.10.12 / 3.11.4: the checks above are the filter
            tar.extractall(target)
    if (workdir / "pyproject.toml").is_file() and workdir.resolve() != target.resolve():
        for entry in sorted(workdir.iterdir()):
            if not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        local = workdir / "conf" / "local"
        if local.is_dir() and (target / "conf").is_dir() and not (target / "conf" / "local").exists():
            (target / "conf" / "local").symlink_to(local.resolve(), target_is_directory=True)
    return target


def missing_module(exc: BaseException | None) -> str | None:
    """The name of the module behind a ``ModuleNotFoundError`` in ``exc``'s chain, if any."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def missing_module_message(module: str) -> str:
    return (
        f"the uploaded code imports {module!r}, which this task's image does not have: add it to the project's "
        "dependencies, rebuild and push the image (run_config.image), then submit again"
    )
