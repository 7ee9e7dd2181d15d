"""A throwaway backend for tests: one package (this file and its ``settings`` module) plus one registry line.

It runs nothing; what matters is that its ``run_config.relay`` section and its runner params reach validation, the
configuration reference and ``init``'s template without any shared module naming it.
"""

from __future__ import annotations

from typing import ClassVar

from kedro_vertex_runner.backends.base import Backend, Capability, JobHandle, JobRequest


class RelayBackend(Backend):
    name: ClassVar[str] = "relay"
    title: ClassVar[str] = "Relay"
    root_schemes: ClassVar[tuple[str, ...]] = ("", "gs")
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.RUN})
    needs_gcp_project: ClassVar[bool] = False

    def start(self, job: JobRequest) -> JobHandle:
        return JobHandle(job_id="relay-1", url="relay://jobs", run_key={"job_id": "relay-1"})
