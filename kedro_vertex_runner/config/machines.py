"""Machine settings of a task (``machine_type``, ``spot``, ``boot_disk``, ``reservation``, ``max_wait``) and the
job's persistent resource: their models and the rules their values follow.

A machine type is checked against Compute Engine's naming (``<family>-<kind>-<size>``, e.g. ``n2-highmem-32``,
``a2-highgpu-1g``, ``ct5lp-hightpu-4t``) and against the accelerator it implies: GPU families (``a2``, ``a3``,
``a4``, ``g2``) come with their GPU, TPU families with their TPU, ``n1`` takes the older NVIDIA GPUs, the others
none. Every refusal is a ``ValueError`` whose text names the value and the fix; the config loader puts the file
and key in front of it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Compute Engine machine families Vertex AI trains on (https://cloud.google.com/vertex-ai/docs/training/configure-compute)
MACHINE_FAMILIES = (
    "a2",
    "a3",
    "a4",
    "c2",
    "c2d",
    "c3",
    "c3d",
    "c4",
    "ct5lp",
    "e2",
    "g2",
    "m1",
    "m2",
    "m3",
    "n1",
    "n2",
    "n2d",
    "n4",
)
MACHINE_KINDS = (
    "standard",
    "highmem",
    "highcpu",
    "highgpu",
    "megagpu",
    "ultragpu",
    "ultramem",
    "megamem",
    "hightpu",
)
_MACHINE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9]*)-(?P<kind>[a-z]+)-(?P<size>[1-9][0-9]{0,2})(?P<unit>[gt]?)$")
# accelerators an n1 machine may carry; other CPU families carry none
N1_ACCELERATORS = ("NVIDIA_TESLA_T4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_P4", "NVIDIA_TESLA_K80")
# (family, kind) → the accelerator built into the machine
_BUILT_IN = {
    ("a2", "highgpu"): "NVIDIA_TESLA_A100",
    ("a2", "megagpu"): "NVIDIA_TESLA_A100",
    ("a2", "ultragpu"): "NVIDIA_A100_80GB",
    ("a3", "highgpu"): "NVIDIA_H100_80GB",
    ("a3", "megagpu"): "NVIDIA_H100_MEGA_80GB",
    ("a3", "ultragpu"): "NVIDIA_H200_141GB",
    ("a4", "highgpu"): "NVIDIA_B200",
    ("g2", "standard"): "NVIDIA_L4",
    ("ct5lp", "hightpu"): "TPU_V5_LITEPOD",
}
_G2_GPUS = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}  # g2-standard-<vCPUs> → L4 GPUs
MIN_BOOT_DISK_GB = 100  # Vertex AI's minimum for a custom job's boot disk
MAX_BOOT_DISK_GB = 64_000
MAX_WAIT_SECONDS = 7 * 86400  # FLEX_START waits at most 7 days
DEFAULT_MACHINE_TYPE = "n1-standard-4"  # what google-cloud-pipeline-components' custom job uses when none is given
_RESERVATION = re.compile(
    r"^projects/(?P<project>[^/]+)/zones/(?P<zone>[a-z]+-[a-z]+[0-9]+-[a-z])/reservations/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
_PERSISTENT_RESOURCE = re.compile(
    r"^(projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/persistentResources/)?(?P<id>[a-z][a-z0-9-]{0,62})$"
)
# the keys that make a task a Vertex AI CustomJob
MACHINE_KEYS = ("machine_type", "spot", "boot_disk", "reservation", "max_wait")


class BootDisk(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["pd-ssd", "pd-standard", "pd-balanced", "hyperdisk-balanced"] = Field(
        "pd-ssd", description="Boot disk type: 'pd-ssd' (default), 'pd-standard', 'pd-balanced', 'hyperdisk-balanced'."
    )
    size_gb: int = Field(
        100, description=f"Boot disk size in GB, {MIN_BOOT_DISK_GB} (the default and Vertex AI's minimum) to 64000."
    )

    @field_validator("size_gb")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < MIN_BOOT_DISK_GB:
            raise ValueError(
                f"{value} GB is under Vertex AI's minimum boot disk of {MIN_BOOT_DISK_GB} GB: set size_gb to at "
                f"least {MIN_BOOT_DISK_GB}"
            )
        if value > MAX_BOOT_DISK_GB:
            raise ValueError(f"{value} GB is more than a boot disk can be ({MAX_BOOT_DISK_GB} GB)")
        return value


class PersistentResource(BaseModel):
    """``run_config.persistent_resource``: the Vertex AI persistent resource the whole job runs on."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Persistent resource id in the job's project and region, or "
        "`projects/<project>/locations/<region>/persistentResources/<id>`."
    )
    when_busy: Literal["fail", "on_demand"] = Field(
        "fail",
        description="When the resource has no free machine for a task after `wait`: 'fail' the task, or "
        "'on_demand' run it on machines started for it.",
    )
    wait: float | None = Field(
        None, description="Seconds (or '10m') a task waits for a free machine of the resource (default: Vertex AI's)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _PERSISTENT_RESOURCE.fullmatch(value):
            raise ValueError(
                f"expected a persistent resource id such as 'kedro-pool' or "
                f"'projects/<project>/locations/<region>/persistentResources/<id>', got {value!r}"
            )
        return value

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, value: Any) -> Any:
        from .rules import parse_duration

        return None if value is None else parse_duration(value, 86400)


def persistent_resource_shorthand(value: Any) -> Any:
    """``persistent_resource: kedro-pool`` means ``{name: kedro-pool}``."""
    return {"name": value} if isinstance(value, str) else value


def check_persistent_resource_region(resource: PersistentResource, project: str | None, region: str | None) -> str:
    """The full resource name of ``resource`` in ``project``/``region``.

    Raises:
        ValueError: a full name in another region (Vertex AI runs a job only on a resource of its own region).
    """
    match = _PERSISTENT_RESOURCE.fullmatch(resource.name)
    assert match  # checked by the model
    location = match["location"]
    if location and region and location != region:
        raise ValueError(
            f"{resource.name!r} is in region {location!r}, but the job runs in {region!r}: use a persistent "
            f"resource in {region}, or run the job there"
        )
    if location:
        return resource.name
    return f"projects/{project}/locations/{region}/persistentResources/{resource.name}"


def check_machine_type(value: str) -> str:
    """``value`` if it is a Compute Engine machine type Vertex AI can run a job on; else a ValueError."""
    if value == "cloud-tpu":
        return value
    match = _MACHINE_TYPE.fullmatch(value)
    if not match or match["family"] not in MACHINE_FAMILIES or match["kind"] not in MACHINE_KINDS:
        family = value.split("-", 1)[0]
        close = difflib.get_close_matches(family, MACHINE_FAMILIES, n=1, cutoff=0.5)
        hint = (
            f"family {family!r} is unknown, did you mean {close[0]!r}?"
            if family not in MACHINE_FAMILIES and close
            else "expected <family>-<kind>-<size>"
        )
        raise ValueError(
            f"{value!a} is not a Compute Engine machine type ({hint}); use a type such as 'n2-highmem-32', "
            "'a2-highgpu-1g' or 'g2-standard-8' (see `gcloud compute machine-types list`)"
        )
    return value


def implied_accelerator(machine_type: str) -> tuple[str, int] | None:
    """The accelerator built into ``machine_type`` and how many the machine has, or None."""
    match = _MACHINE_TYPE.fullmatch(machine_type)
    if not match:
        return None
    accelerator = _BUILT_IN.get((match["family"], match["kind"]))
    if accelerator is None:
        return None
    size = int(match["size"])
    if match["family"] == "g2":
        return accelerator, _G2_GPUS.get(size, 1)
    return accelerator, size


def check_machine_accelerator(machine_type: str, accelerator: str | None, gpu: int | None) -> None:
    """Whether ``accelerator`` (and ``gpu`` count) fit ``machine_type``.

    Raises:
        ValueError: naming both and the fix.
    """
    if machine_type == "cloud-tpu":
        if accelerator and not accelerator.startswith("TPU_"):
            raise ValueError(f"machine_type 'cloud-tpu' takes a TPU accelerator (TPU_V2, TPU_V3), not {accelerator}")
        return
    family = machine_type.split("-", 1)[0]
    built_in = implied_accelerator(machine_type)
    if built_in is not None:
        kind, count = built_in
        if accelerator and accelerator != kind:
            raise ValueError(
                f"machine type {machine_type!r} comes with {kind}, not {accelerator}: set accelerator to {kind}, "
                f"or remove it (the machine type implies it), or pick a machine type for {accelerator}"
            )
        if gpu and accelerator and gpu != count:
            raise ValueError(
                f"machine type {machine_type!r} has {count} {kind}, not {gpu}: set gpu to {count}, or pick the "
                f"machine type with {gpu}"
            )
        return
    if not accelerator:
        return
    if family == "n1" and accelerator in N1_ACCELERATORS:
        return
    where = (
        "n1 machine types take only " + ", ".join(N1_ACCELERATORS)
        if family == "n1"
        else (f"{family} machine types have no accelerator")
    )
    raise ValueError(
        f"machine type {machine_type!r} cannot carry {accelerator} ({where}): remove the accelerator, or pick a "
        "machine type made for it (an a2/a3 type for A100/H100, g2 for L4, n1 for T4/V100)"
    )


def check_reservation(value: str) -> str:
    if not _RESERVATION.fullmatch(value):
        raise ValueError(
            f"expected the full name of a Compute Engine reservation, "
            f"'projects/<project>/zones/<zone>/reservations/<name>', got {value!r}"
        )
    return value


def check_reservation_region(value: str | None, region: str | None) -> str | None:
    """Why reservation ``value`` cannot serve a job in ``region`` (its zone is elsewhere), or None."""
    match = _RESERVATION.fullmatch(value or "")
    if not match or not region or match["zone"].rsplit("-", 1)[0] == region:
        return None
    return (
        f"{value!r} is in zone {match['zone']!r}, outside the job's region {region!r}: use a reservation in a "
        f"zone of {region}"
    )


def check_machine_combination(values: dict[str, Any]) -> tuple[str, str] | None:
    """``(key, message)`` for a contradiction between a task's machine settings, or None."""
    spot, reservation, max_wait = values.get("spot"), values.get("reservation"), values.get("max_wait")
    if spot and reservation:
        return "reservation", (
            f"{reservation!r} contradicts spot: true (a Spot VM never uses a reservation): remove `reservation`, "
            "or set spot: false"
        )
    if spot and max_wait is not None:
        return "max_wait", (
            "max_wait is FLEX_START's longest wait for a machine and contradicts spot: true (a Spot VM starts at "
            "once or not at all): remove max_wait, or set spot: false"
        )
    if reservation and max_wait is not None:
        return "max_wait", (
            "max_wait (FLEX_START) contradicts a reservation (its machines are already held): remove one of them"
        )
    machine_type = values.get("machine_type")
    if machine_type:
        try:
            check_machine_accelerator(machine_type, values.get("accelerator"), values.get("gpu"))
        except ValueError as exc:
            return "machine_type", str(exc)
    return None


@dataclass(frozen=True)
class Machine:
    """What one CustomJob task runs on: the effective machine settings of its nodes."""

    machine_type: str
    accelerator: str | None
    accelerator_count: int
    strategy: Literal["STANDARD", "SPOT", "FLEX_START"]
    boot_disk_type: str
    boot_disk_size_gb: int
    reservation: str | None
    max_wait: float | None

    @classmethod
    def of(cls, settings: Any) -> Machine | None:
        """The machine of a node's (or group's) effective settings, or None when none of the machine keys is set."""
        if not any(getattr(settings, key, None) not in (None, False) for key in MACHINE_KEYS):
            return None
        machine_type = settings.machine_type or DEFAULT_MACHINE_TYPE
        accelerator, count = settings.accelerator, settings.gpu or 0
        built_in = implied_accelerator(machine_type)
        if built_in is not None and built_in[0].startswith("NVIDIA_"):
            accelerator, count = built_in  # Vertex AI wants a GPU machine's GPUs spelt out; a TPU type names its TPUs
        elif accelerator and not count:
            count = 1
        disk = settings.boot_disk
        if isinstance(disk, dict):
            disk = BootDisk(**disk)
        disk = disk or BootDisk()
        strategy: Literal["STANDARD", "SPOT", "FLEX_START"] = (
            "SPOT" if settings.spot else "FLEX_START" if settings.max_wait is not None else "STANDARD"
        )
        return cls(
            machine_type=machine_type,
            accelerator=accelerator,
            accelerator_count=count if accelerator else 0,
            strategy=strategy,
            boot_disk_type=disk.type,
            boot_disk_size_gb=disk.size_gb,
            reservation=settings.reservation,
            max_wait=settings.max_wait,
        )

    def describe(self) -> str:
        """Every setting of the machine, e.g. ``a2-highgpu-1g + 1x NVIDIA_TESLA_A100 (spot, pd-ssd 200 GB)``."""
        accelerator = f" + {self.accelerator_count}x {self.accelerator}" if self.accelerator else ""
        extra = f", reservation {self.reservation}" if self.reservation else ""
        extra += f", max_wait {self.max_wait:g}s" if self.max_wait is not None else ""
        disk = f"{self.boot_disk_type} {self.boot_disk_size_gb} GB"
        return f"{self.machine_type}{accelerator} ({self.strategy.lower()}, {disk}{extra})"
