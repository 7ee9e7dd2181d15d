"""Code upload, the task's side: fetch the project's code that the launcher uploaded (``--code-uri``) and run it.

In the task (:func:`unpack`), the entrypoint reads the archive, checks its sha256 against the URI, unpacks it into
a fresh scratch directory and runs the project from there (Kedro puts its ``src/`` first on ``sys.path``). Entries
of the task's working directory that the archive does not hold (``data/``, and ``conf/local`` on a laptop) are
linked into the scratch directory, so relative catalog paths mean what they mean without code upload. This module
is imported in the task only when ``--code-uri`` is given, and imports neither kfp nor aiplatform.

How the archive is made and stored: :mod:`kedro_vertex_runner.code_upload`.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from ..errors import PluginError

CODE_DIR = "code"
ARCHIVE_NAME = "code.tar.gz"
_URI = re.compile(rf"/{CODE_DIR}/([0-9a-f]{{64}})/{re.escape(ARCHIVE_NAME)}$")


def digest_of(uri: str) -> str:
    """The sha256 named by a code URI; raises for anything else."""
    match = _URI.search(uri)
    if not match:
        raise PluginError(
            f"--code-uri={uri}: expected <root>/{CODE_DIR}/<sha256>/{ARCHIVE_NAME}, as the compiler writes it"
        )
    return match.group(1)


def _read(uri: str) -> bytes:
    from ..storage import url_to_fs

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
