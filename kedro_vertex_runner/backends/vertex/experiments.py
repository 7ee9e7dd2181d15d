"""Vertex AI experiments: the experiment a job's run is attached to.

The experiment is got-or-created *before* the job (a job refused afterwards leaves only an empty experiment, which
the next submit reuses); once the job exists nothing about the experiment can fail the command: a failure to link
the job's run to the experiment is a warning, and the job is followed as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import PluginError
from .api import _EXPERIMENT_NAME, API_TIMEOUT, VertexApi, _api_error, _call

if TYPE_CHECKING:
    from ..base import Reporter


def ensure_experiment(api: VertexApi, name: str, description: str | None) -> str:
    """Get or create the experiment's metadata context (as ``aiplatform`` does); return its resource name."""
    from google.api_core import exceptions as gexc

    if not _EXPERIMENT_NAME.match(name):
        raise PluginError(
            f"run_config.experiment_name {name!r}: use lowercase letters, digits and '-' (at most 128), "
            "starting with a letter or digit"
        )
    config = api.config
    store = f"{api.parent}/metadataStores/default"
    context_name = f"{store}/contexts/{name}"
    action = f"preparing experiment {name!r}"
    try:
        context = api.metadata.get_context(name=context_name, timeout=API_TIMEOUT)
    except gexc.NotFound:
        context = None
    except Exception as exc:
        raise _api_error(exc, action, config) from None
    if context is not None:
        if context.schema_title != "system.Experiment":
            raise PluginError(
                f"run_config.experiment_name {name!r} is already used by a {context.schema_title} metadata "
                "context, not an experiment: choose another name"
            )
        return context_name
    try:
        api.metadata.get_metadata_store(name=store, timeout=API_TIMEOUT)
    except gexc.NotFound:
        operation = _call(
            action,
            config,
            api.metadata.create_metadata_store,
            parent=api.parent,
            metadata_store={},
            metadata_store_id="default",
        )
        try:
            operation.result(timeout=300)
        except Exception as exc:
            raise _api_error(exc, action, config) from None
    except Exception as exc:
        raise _api_error(exc, action, config) from None
    try:
        api.metadata.create_context(
            parent=store,
            context_id=name,
            context={
                "display_name": name,
                "schema_title": "system.Experiment",
                "schema_version": "0.0.1",
                "description": description or "",
                "metadata": {"experiment_deleted": False},
            },
            timeout=API_TIMEOUT,
        )
    except gexc.AlreadyExists:
        pass
    except Exception as exc:
        raise _api_error(exc, action, config) from None
    return context_name


def attach_to_experiment(api: VertexApi, experiment_context: str, run_context: str, reporter: Reporter) -> bool:
    """Link the job's run context to the experiment; a failure is a warning, never an error.

    The job exists and runs by now: failing the command here would make users resubmit it (a second job) for
    the sake of a link in the console. Returns whether the link was made.
    """
    experiment = experiment_context.rsplit("/", 1)[-1]
    try:
        _call(
            f"attaching the job to experiment {experiment!r}",
            api.config,
            api.metadata.add_context_children,
            context=experiment_context,
            child_contexts=[run_context],
        )
    except PluginError as exc:
        job_id = run_context.rsplit("/", 1)[-1]
        reporter.warn(f"job {job_id} was submitted and runs, but {exc}")
        return False
    return True
