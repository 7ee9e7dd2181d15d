"""Code upload (``run_config.code: upload``): ship the project's code and configuration with the job, so one image
holding only the dependencies serves every code change.

At submit time (``kedro run --runner=VertexRunner``, ``kedro vertexai run-once`` / ``schedule`` / ``compile``) the
project is packaged as one ``.tar.gz``: ``pyproject.toml`` (and ``requirements.txt``), the package under the
source dir (``src/<package>/``) and ``conf/``, as git sees them: every ``.gitignore`` (nested ones too, and those
of the folders above the project up to its repository's top) and ``.git/info/exclude`` apply with git's semantics,
and the project's ``.dockerignore`` with Docker's. Left out, always: ``.git`` (a vendored repository's too),
``conf/local``, caches, and whatever looks like credentials or key material (:data:`KEY_MATERIAL`; named in one
warning line, never read). Links are followed when they lead to something inside the project that is shipped
itself; the others (outside the project, nowhere, a loop) are named in one warning line. A file bigger than
``run_config.code_upload.max_file_size`` is refused in one line.

The archive is deterministic (sorted members, zeroed times and owners, fixed modes, gzip without a timestamp), so
the same code always gives the same bytes. It is stored content-addressed at ``<root>/code/<sha256>/code.tar.gz``:
an unchanged project uploads nothing, and the compiled spec — whose tasks get ``--code-uri=<that URI>`` — stays
byte-identical for the same code.

In the task, the entrypoint unpacks it: :mod:`kedro_vertex_runner.task.code_unpack`.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PluginError
from .files import replace_file
from .task.code_unpack import ARCHIVE_NAME, CODE_DIR

DEFAULT_MAX_FILE_SIZE = 20_000_000  # bytes: run_config.code_upload.max_file_size
# Credentials and key material: never shipped, whatever the ignore files say. Matched, case-insensitively, against
# the name of every file and folder on the way (a folder that matches is left out whole).
KEY_MATERIAL = (
    "*credentials*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "id_dsa*",
    ".ssh",
    ".gnupg",
    ".aws",
    ".kube",
    ".docker",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    ".env*",
    "*service-account*.json",
    "*-key.json",
    "client_secret*.json",
)
# caches: never shipped, without a word
CACHES = ("__pycache__", "*.py[cod]", ".ipynb_checkpoints", "*.egg-info")
LOCAL_CONF = "conf/local"


@dataclass(frozen=True)
class CodePackage:
    """The packaged project: the archive's bytes, their sha256 and the member names (sorted); ``size``: the bytes
    of the files shipped; what was left out with a warning (``key_material``, ``links``)."""

    data: bytes
    digest: str
    files: tuple[str, ...]
    size: int = 0
    key_material: tuple[str, ...] = ()
    links: tuple[str, ...] = ()

    def uri(self, root: str) -> str:
        """Where this package lives under the storage ``root``: ``<root>/code/<sha256>/code.tar.gz``."""
        return f"{root.rstrip('/')}/{CODE_DIR}/{self.digest}/{ARCHIVE_NAME}"

    def summary(self) -> str:
        """``12 files, 45,678 bytes, sha256 3f2a9c0b1d2e``: what is shipped, in a few words."""
        return f"{len(self.files)} files, {self.size:,} bytes, sha256 {self.digest[:12]}"

    def warnings(self) -> list[str]:
        """One line for the files left out because they look like credentials or keys (names only, never
        contents), one for the links not followed."""
        lines = []
        if self.key_material:
            lines.append(
                f"code upload left out {len(self.key_material)} files or folders that look like credentials or keys: "
                f"{_some(self.key_material)}"
            )
        if self.links:
            lines.append(f"code upload did not follow {len(self.links)} links: {_some(self.links)}")
        return lines


def _some(names: tuple[str, ...], shown: int = 10) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 10**9 else f"{size / 1e6:.1f} MB" if size >= 10**6 else f"{size:,} bytes"


# ---------------------------------------------------------------------------------------------------------------
# packaging (launcher side)


def _git_dir(top: Path) -> Path | None:
    """The git directory of the work tree at ``top`` (``.git``, or where a ``.git`` file points), if any."""
    marker = top / ".git"
    if marker.is_dir():
        return marker
    try:
        text = marker.read_text(encoding="utf-8", errors="replace").strip() if marker.is_file() else ""
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    git_dir = Path(text[len("gitdir:") :].strip())
    git_dir = git_dir if git_dir.is_absolute() else top / git_dir
    common = git_dir / "commondir"  # a linked work tree: info/exclude is the main repository's
    if common.is_file():
        shared = Path(common.read_text(encoding="utf-8", errors="replace").strip())
        git_dir = shared if shared.is_absolute() else git_dir / shared
    return git_dir


def _spec(path: Path) -> Any:
    """The ``GitIgnoreSpec`` of an ignore file, or ``None`` when there is none."""
    import pathspec

    try:
        if not path.is_file():
            return None
        return pathspec.GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return None


def _docker_lines(lines: list[str]) -> list[str]:
    """``.dockerignore`` patterns in gitignore syntax: Docker anchors every pattern at the project's top."""
    anchored = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negated = text.startswith("!")
        body = text[1:].strip().lstrip("/") if negated else text.lstrip("/")
        if body and not body.startswith("**"):
            body = "/" + body
        anchored.append(("!" if negated else "") + body)
    return anchored


class _IgnoreRules:
    """Git's view of the project: every ``.gitignore`` from the repository's top down (the deepest one that says
    something about a path decides, the last matching line within it), then ``.git/info/exclude``; plus the
    project's ``.dockerignore`` (Docker's semantics: anchored at the project's top)."""

    def __init__(self, project_dir: Path) -> None:
        import pathspec

        self.project_dir = project_dir
        self._dirs: dict[str, Any] = {}
        self.outer: list[tuple[str, Any]] = []  # (the project's path from that directory, its spec), deepest first
        real = Path(os.path.realpath(project_dir))
        for top in (real, *real.parents):
            git_dir = _git_dir(top)
            if git_dir is None:
                continue
            for directory in (real.parents[i] for i in range(len(real.relative_to(top).parts))):
                spec = _spec(directory / ".gitignore")
                if spec is not None:
                    self.outer.append((real.relative_to(directory).as_posix(), spec))
            exclude = _spec(git_dir / "info" / "exclude")
            if exclude is not None:
                self.outer.append((real.relative_to(top).as_posix(), exclude))
            break
        docker = project_dir / ".dockerignore"
        lines = docker.read_text(encoding="utf-8", errors="replace").splitlines() if docker.is_file() else []
        self.docker = pathspec.GitIgnoreSpec.from_lines(_docker_lines(lines))

    def _dir_spec(self, rel_dir: str) -> Any:
        if rel_dir not in self._dirs:
            self._dirs[rel_dir] = _spec(self.project_dir / rel_dir / ".gitignore")
        return self._dirs[rel_dir]

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether git ignores ``rel`` itself (a path relative to the project; its folders are not checked)."""
        suffix = "/" if is_dir else ""
        return self._git_ignored(rel, suffix) or bool(self.docker.match_file(rel + suffix))

    def _git_ignored(self, rel: str, suffix: str) -> bool:
        parts = rel.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            spec = self._dir_spec("/".join(parts[:depth]))
            if spec is not None:
                found = spec.check_file("/".join(parts[depth:]) + suffix).include
                if found is not None:
                    return bool(found)
        for prefix, spec in self.outer:
            found = spec.check_file((rel if prefix == "." else f"{prefix}/{rel}") + suffix).include
            if found is not None:
                return bool(found)
        return False

    def hidden(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` or one of its folders is ignored."""
        parts = rel.split("/")
        return any(self.ignored("/".join(parts[:i]), True) for i in range(1, len(parts))) or self.ignored(rel, is_dir)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in patterns)


def _never_shipped(rel: str) -> bool:
    """``.git``, ``conf/local``, credentials, key material or caches somewhere in ``rel``."""
    parts = rel.split("/")
    return (
        ".git" in parts
        or rel == LOCAL_CONF
        or rel.startswith(LOCAL_CONF + "/")
        or any(_matches(part, KEY_MATERIAL + CACHES) for part in parts)
    )


@dataclass
class _Selection:
    files: list[tuple[str, Path, int]]  # name in the archive, file to read, its size
    key_material: list[str]
    links: list[str]


def _select(project_dir: Path, package_name: str, source_dir: str) -> _Selection:
    """Walk the project as git would see it, keeping ``pyproject.toml``, ``requirements.txt``, the package and
    ``conf/``. Links are followed when they lead to something inside the project that is shipped itself."""
    package = (Path(source_dir) / package_name).as_posix().removeprefix("./")
    tops = ("pyproject.toml", "requirements.txt", package, "conf")
    rules = _IgnoreRules(project_dir)
    real_project = os.path.realpath(project_dir)
    found = _Selection([], [], [])

    def wanted(rel: str, is_dir: bool) -> bool:
        return any(rel == top or rel.startswith(top + "/") or (is_dir and top.startswith(rel + "/")) for top in tops)

    def walk(directory: str, rel_dir: str, chain: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name == ".git":  # a repository's own files, here or in a vendored one: never
                continue
            is_link = entry.is_symlink()
            target = os.path.realpath(entry.path) if is_link else entry.path
            is_dir = os.path.isdir(target)
            if not wanted(rel, is_dir) or rel == LOCAL_CONF or rel.startswith(LOCAL_CONF + "/"):
                continue
            if _matches(entry.name, KEY_MATERIAL):
                found.key_material.append(rel + ("/" if is_dir else ""))
                continue
            if _matches(entry.name, CACHES) or rules.ignored(rel, is_dir):
                continue
            if is_link:
                shown = f"{rel} -> {os.readlink(entry.path)}"
                inside = os.path.relpath(target, real_project).replace(os.sep, "/")
                if os.path.commonpath([real_project, target]) != real_project:
                    found.links.append(f"{shown} (leaves the project)")
                    continue
                if not os.path.exists(target):
                    found.links.append(f"{shown} (leads nowhere)")
                    continue
                if is_dir and target in chain:
                    found.links.append(f"{shown} (a loop)")
                    continue
                if _never_shipped(inside) or rules.hidden(inside, is_dir):
                    found.links.append(f"{shown} (its target is not shipped itself)")
                    continue
            if is_dir:
                walk(target, rel, (*chain, os.path.realpath(target)))
            elif os.path.isfile(target):
                found.files.append((rel, Path(target), os.stat(target).st_size))

    walk(str(project_dir), "", (real_project,))
    return found


def project_files(project_dir: Path, package_name: str, source_dir: str = "src") -> list[str]:
    """The files code upload ships, as sorted POSIX paths relative to ``project_dir``.

    Raises:
        PluginError: the package directory is missing, or every file of it is ignored.
    """
    return sorted(name for name, _, _ in _checked(project_dir, package_name, source_dir).files)


def _checked(project_dir: Path, package_name: str, source_dir: str) -> _Selection:
    package_dir = project_dir / source_dir / package_name
    if not package_dir.is_dir():
        raise PluginError(
            f"run_config.code: upload: no package at {package_dir}: check [tool.kedro] package_name and source_dir "
            "in pyproject.toml"
        )
    found = _select(project_dir, package_name, source_dir)
    package = (Path(source_dir) / package_name).as_posix().removeprefix("./") + "/"
    if not any(name.startswith(package) for name, _, _ in found.files):
        raise PluginError(
            f"run_config.code: upload: no file of {package} would be shipped: the .gitignore files (of the project "
            "and the folders above it), .git/info/exclude or .dockerignore exclude them all; un-ignore the package"
        )
    return found


def package_project(
    project_dir: Path, package_name: str, source_dir: str = "src", max_file_size: int = DEFAULT_MAX_FILE_SIZE
) -> CodePackage:
    """Package the project's code and configuration as a deterministic ``.tar.gz`` (see the module docstring).

    Raises:
        PluginError: the package is missing, or a file is bigger than ``max_file_size`` bytes (one line naming it).
    """
    found = _checked(project_dir, package_name, source_dir)
    files = sorted(found.files)
    too_big = [(name, size) for name, _, size in files if size > max_file_size]
    if too_big:
        name, size = too_big[0]
        others = f" (and {_some(tuple(n for n, _ in too_big[1:]), 3)})" if len(too_big) > 1 else ""
        raise PluginError(
            f"run_config.code: upload: {name} is {_size(size)}{f' ({size:,} bytes)' if size >= 10**6 else ''}, over "
            f"the {_size(max_file_size)} "
            f"limit for one file{others}: add it to .gitignore (or keep it out of conf/ and src/), or raise "
            "run_config.code_upload.max_file_size"
        )
    raw = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path, _ in files:
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise PluginError(
                    f"run_config.code: upload: cannot read {name} ({exc.strerror or type(exc).__name__}): make it "
                    "readable, or leave it out with .gitignore"
                ) from None
            total += len(content)
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
    return CodePackage(
        data=data,
        digest=hashlib.sha256(data).hexdigest(),
        files=tuple(name for name, _, _ in files),
        size=total,
        key_material=tuple(sorted(found.key_material)),
        links=tuple(sorted(found.links)),
    )


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
            replace_file(path, package.data)
    except PluginError:
        raise
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise PluginError(
            f"run_config.code: upload: cannot store the project's code at {uri} ({reason}): check run_config.root "
            "and your access to it"
        ) from None
    return True


def prepare(
    project_dir: Path,
    package_name: str,
    source_dir: str,
    root: str,
    backend: str,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
) -> str:
    """Package and upload the project; returns the archive's URI for the tasks (``--code-uri``).

    Prints a warning line naming what was left out as credentials or keys, one naming the links not followed,
    one line saying what was shipped (files, bytes, digest) and whether it was uploaded or was there already, and
    one warning line when the project's requirements differ from what the tasks have: for a backend running tasks
    on this machine, the packages installed here; elsewhere, the requirements of the previous upload (the image
    was built for those).
    """
    from .backends import backend_class
    from .storage import require

    root = code_root(root, project_dir)
    require(root)  # s3:// without s3fs: one line before packaging anything
    package = package_project(project_dir, package_name, source_dir, max_file_size)
    for line in package.warnings():
        print(f"Warning: {line}", file=sys.stderr)
    uri = package.uri(root)
    if upload(package, uri):
        print(f"Uploaded the project's code ({package.summary()}) to {uri}", file=sys.stderr)
    else:
        print(f"The project's code is unchanged ({package.summary()}): using {uri}", file=sys.stderr)
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
