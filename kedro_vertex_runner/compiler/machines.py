"""A task with machine settings compiled as a Vertex AI CustomJob inside the pipeline, laid out exactly as
google-cloud-pipeline-components (GCPC) 2.22's ``create_custom_training_job_from_component`` compiles one.

The task's own container (image, command, args, env) becomes the first worker pool of a CustomJob whose payload the
GCPC launcher (``google_cloud_pipeline_components.container.v1.custom_job.launcher``) submits and waits for; the
component takes GCPC's inputs (their defaults carry the settings) and gives GCPC's ``gcp_resources`` output, which
the Vertex AI console reads to link the CustomJob. ``tests/golden/gcpc_custom_job.json`` is what GCPC compiles for
the same settings; ``tests/test_machines.py`` compares the two field by field.

Placeholders in the task's args (runtime parameters, the job's ids) stay inside ``worker_pool_specs`` as GCPC
leaves them there. ``persistent_resource_id`` defaults to ``{{$.pipeline_persistent_resource_id}}``: on a job run
on a persistent resource the CustomJob runs there too, elsewhere on machines started for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ..config.machines import Machine, check_machine_combination
from ..errors import PluginError

if TYPE_CHECKING:
    from ..config import RunConfig

GCPC_VERSION = "2.22.0"
LAUNCHER_IMAGE = f"gcr.io/ml-pipeline/google-cloud-pipeline-components:{GCPC_VERSION}"
LAUNCHER_COMMAND = ["python3", "-u", "-m", "google_cloud_pipeline_components.container.v1.custom_job.launcher"]
DEFAULT_TIMEOUT = "604800s"  # GCPC's: 7 days
DEFAULT_MAX_WAIT = "86400s"  # GCPC's
RESERVATION_KEY = "compute.googleapis.com/reservation-name"
_PAYLOAD = (
    '{"display_name": "{{$.inputs.parameters[\'display_name\']}}", "job_spec": {"worker_pool_specs": '
    '{{$.inputs.parameters[\'worker_pool_specs\']}}, "scheduling": {"timeout": '
    '"{{$.inputs.parameters[\'timeout\']}}", "restart_job_on_worker_restart": '
    "{{$.inputs.parameters['restart_job_on_worker_restart']}}, \"strategy\": "
    '"{{$.inputs.parameters[\'strategy\']}}", "max_wait_duration": '
    '"{{$.inputs.parameters[\'max_wait_duration\']}}"}, "service_account": '
    '"{{$.inputs.parameters[\'service_account\']}}", "tensorboard": "{{$.inputs.parameters[\'tensorboard\']}}", '
    '"enable_web_access": {{$.inputs.parameters[\'enable_web_access\']}}, "network": '
    '"{{$.inputs.parameters[\'network\']}}", "reserved_ip_ranges": '
    '{{$.inputs.parameters[\'reserved_ip_ranges\']}}, "base_output_directory": {"output_uri_prefix": '
    '"{{$.inputs.parameters[\'base_output_directory\']}}"}, "persistent_resource_id": '
    '"{{$.inputs.parameters[\'persistent_resource_id\']}}", "psc_interface_config": '
    "{{$.inputs.parameters['psc_interface_config']}}}, \"labels\": {{$.inputs.parameters['labels']}}, "
    '"encryption_spec": {"kms_key_name": "{{$.inputs.parameters[\'encryption_spec_key_name\']}}"}}'
)


def machine_of(settings: Any, where: str) -> Machine | None:
    """The machine of one node's effective settings (its layers merged), or None; a contradiction between layers
    (``spot`` from ``__default__``, a ``reservation`` under the node's name) is one line naming the node.

    Raises:
        PluginError: ``run_config.resources: node 'x': <key>: <what to do>``.
    """
    values = {key: getattr(settings, key, None) for key in (*_KEYS, "accelerator", "gpu")}
    problem = check_machine_combination(values)
    if problem:
        raise PluginError(f"run_config.resources: {where}: {problem[0]}: {problem[1]}")
    return Machine.of(settings)


def machine_key(settings: Any) -> tuple[Any, ...] | None:
    """What decides a node's machine: two nodes share a task only if these agree."""
    machine = Machine.of(settings)
    if machine is None:
        return None
    return (
        machine.machine_type,
        machine.accelerator,
        machine.accelerator_count,
        machine.strategy,
        machine.boot_disk_type,
        machine.boot_disk_size_gb,
        machine.reservation,
        machine.max_wait,
    )


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{value}s"


def _worker_pool(container: dict[str, Any], machine: Machine) -> dict[str, Any]:
    machine_spec: dict[str, Any] = {"machine_type": machine.machine_type}
    if machine.accelerator:
        machine_spec["accelerator_type"] = machine.accelerator
        machine_spec["accelerator_count"] = machine.accelerator_count
    if machine.reservation:
        machine_spec["reservation_affinity"] = {
            "reservation_affinity_type": "SPECIFIC_RESERVATION",
            "key": RESERVATION_KEY,
            "values": [machine.reservation],
        }
    return {
        "container_spec": {
            "args": list(container["args"]),
            "command": list(container["command"]),
            "env": [dict(item) for item in container.get("env", [])],
            "image_uri": container["image"],
        },
        "disk_spec": {"boot_disk_size_gb": machine.boot_disk_size_gb, "boot_disk_type": machine.boot_disk_type},
        "machine_spec": machine_spec,
        "replica_count": 1,
    }


def _input(type_: str, default: Any = None) -> dict[str, Any]:
    definition: dict[str, Any] = {"isOptional": True, "parameterType": type_}
    if default is not None:
        definition["defaultValue"] = default
    return definition


def custom_job_inputs(
    display_name: str, container: dict[str, Any], machine: Machine, timeout: float | None, run_config: RunConfig
) -> dict[str, Any]:
    """GCPC's input definitions of a custom job component, their defaults set to this task's settings."""
    network = run_config.network
    labels = dict(run_config.labels)
    psc = None
    if network.psc_interface:
        psc = {
            "network_attachment": network.psc_interface.network_attachment,
            "dns_peering_configs": [peering.model_dump() for peering in network.psc_interface.dns_peering],
        }
    return {
        "base_output_directory": _input("STRING", ""),
        "display_name": _input("STRING", display_name),
        "enable_web_access": _input("BOOLEAN", False),
        "encryption_spec_key_name": _input("STRING", run_config.encryption_key or ""),
        "labels": _input("STRUCT", labels or None),
        "location": _input("STRING", "{{$.pipeline_google_cloud_location}}"),
        "max_wait_duration": _input(
            "STRING", _seconds(machine.max_wait) if machine.max_wait is not None else DEFAULT_MAX_WAIT
        ),
        "network": _input("STRING", network.vpc or ""),
        "persistent_resource_id": _input("STRING", "{{$.pipeline_persistent_resource_id}}"),
        "project": _input("STRING", "{{$.pipeline_google_cloud_project_id}}"),
        "psc_interface_config": _input("STRUCT", psc),
        "reserved_ip_ranges": _input("LIST", list(network.reserved_ip_ranges) or None),
        "restart_job_on_worker_restart": _input("BOOLEAN", False),
        "service_account": _input("STRING", run_config.service_account or ""),
        "strategy": _input("STRING", machine.strategy),
        "tensorboard": _input("STRING", ""),
        "timeout": _input("STRING", _seconds(timeout) if timeout else DEFAULT_TIMEOUT),
        "worker_pool_specs": _input("LIST", [_worker_pool(container, machine)]),
    }


def as_custom_job(
    component: dict[str, Any],
    executor: dict[str, Any],
    *,
    display_name: str,
    machine: Machine,
    timeout: float | None,
    run_config: RunConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The component and executor of a task turned into GCPC's custom job: the task's container runs in the
    CustomJob, the launcher runs in the pipeline task."""
    container = executor["container"]
    inputs = component.get("inputDefinitions", {}).get("parameters", {})
    definitions = dict(inputs)
    definitions.update(custom_job_inputs(display_name, container, machine, timeout, run_config))
    wrapped = dict(component)
    wrapped["inputDefinitions"] = {"parameters": definitions}
    wrapped["outputDefinitions"] = {"parameters": {"gcp_resources": {"parameterType": "STRING"}}}
    launcher = {
        "container": {
            "args": [
                "--type",
                "CustomJob",
                "--payload",
                _PAYLOAD,
                "--project",
                "{{$.inputs.parameters['project']}}",
                "--location",
                "{{$.inputs.parameters['location']}}",
                "--gcp_resources",
                "{{$.outputs.parameters['gcp_resources'].output_file}}",
            ],
            "command": list(LAUNCHER_COMMAND),
            "image": LAUNCHER_IMAGE,
        }
    }
    return wrapped, launcher


def note_ignored(backend: str, tasks: int) -> None:
    """One line, once per compile (= per run), when machine settings mean nothing on ``backend``."""
    print(
        f"Note: run_config.resources: the machine settings (machine_type, spot, boot_disk, reservation, max_wait) "
        f"of {tasks} task{'s' if tasks != 1 else ''} mean nothing on backend {backend!r}: they run as any other "
        "task (on Vertex AI each runs as a CustomJob on its machine)",
        file=sys.stderr,
    )


def custom_job_startup(pipeline: Any, run_config: RunConfig) -> dict[str, float]:
    """``grouping_options.custom_job_startup`` for each node whose task runs as a CustomJob (vertex backend only:
    elsewhere machine settings change nothing)."""
    from ..backends import backend_class

    if not backend_class(run_config.backend).machines_as_custom_jobs or not any(
        getattr(settings, key, None) is not None for settings in run_config.resources.values() for key in _KEYS
    ):
        return {}
    from .spec import task_settings

    extra = run_config.grouping_options.custom_job_startup
    settings = task_settings(run_config)
    return {node.name: extra for node in pipeline.nodes if Machine.of(settings.of(node)) is not None}


_KEYS = ("machine_type", "spot", "boot_disk", "reservation", "max_wait")
