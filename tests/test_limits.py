"""Every value checked against the platform's documented limits before anything is compiled, one error line
each; node timings never written through a link, with the umask's permissions, and corrupt ones ignored."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kedro.pipeline import node

from kedro_vertex_runner.config import ConfigError, validate_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.runners import mode_for
from kedro_vertex_runner.task.timings import last_run_durations, record_task
from kedro_vertex_runner.values import check_environment

BASE: dict[str, Any] = {
    "project_id": "my-project",
    "region": "europe-west1",
    "run_config": {"image": "europe-docker.pkg.dev/p/r/img:1", "root": "gs://bucket/runs"},
}


def config_error(run_config: dict[str, Any], **top: Any) -> str:
    raw = {**BASE, **top, "run_config": {**BASE["run_config"], **run_config}}
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def nightly(**entry: Any) -> dict[str, Any]:
    return {"schedules": {"nightly": {"cron": "0 6 * * *", **entry}}}


# ----------------------------------------------------------------------------------------------------------------
# vertexai.yml


@pytest.mark.parametrize(
    ("run_config", "expected"),
    [
        # labels: at most 64; keys start with a lowercase letter; values at most 63; reserved prefixes
        ({"labels": {f"k{n}": "v" for n in range(65)}}, "run_config.labels: 65 labels: Google Cloud allows at most 64"),
        ({"labels": {"1team": "x"}}, "run_config.labels.1team: label key '1team' must start with a lowercase letter"),
        ({"labels": {"team": "x" * 64}}, "run_config.labels.team: label value 'xxxx"),
        ({"labels": {"team": "Ops"}}, "label value 'Ops' may use only lowercase letters (international ones too)"),
        ({"labels": {"goog-cost": "x"}}, "label key 'goog-cost' is reserved"),
        ({"labels": {"vertex-ai-pipelines-run": "x"}}, "label key 'vertex-ai-pipelines-run' is reserved"),
        # CMEK key names
        ({"encryption_key": "projects/p/keyRings/r/cryptoKeys/k"}, "run_config.encryption_key: expected a Cloud KMS"),
        # failure policy, reserved ranges, Private Service Connect
        ({"failure_policy": "never"}, "run_config.failure_policy: expected one of 'fast', 'slow', got 'never'"),
        (
            {"network": {"vpc": "projects/1/global/networks/n", "reserved_ip_ranges": ["Range_A"]}},
            "run_config.network.reserved_ip_ranges: expected the name of a reserved IP range",
        ),
        (
            {"network": {"psc_interface": {"network_attachment": "att-1/extra"}}},
            "run_config.network.psc_interface.network_attachment: expected a network attachment name",
        ),
        (
            {
                "network": {
                    "psc_interface": {
                        "network_attachment": "att",
                        "dns_peering": [
                            {"domain": "a..example.com.", "target_project": "host-project", "target_network": "vpc"}
                        ],
                    }
                }
            },
            "run_config.network.psc_interface.dns_peering.0.domain: expected a DNS suffix ending with a dot",
        ),
        (
            {
                "network": {
                    "psc_interface": {
                        "network_attachment": "att",
                        "dns_peering": [
                            {"domain": "corp.example.com.", "target_project": "h", "target_network": "vpc"}
                        ],
                    }
                }
            },
            "dns_peering.0.target_project: expected a Google Cloud project id",
        ),
        (
            {
                "network": {
                    "psc_interface": {
                        "network_attachment": "att",
                        "dns_peering": [
                            {
                                "domain": "corp.example.com.",
                                "target_project": "host-project",
                                "target_network": "Shared VPC",
                            }
                        ],
                    }
                }
            },
            "dns_peering.0.target_network: expected a VPC network name",
        ),
        # cron expressions: five fields, ranges per field, ranges forwards, steps >= 1, names
        (
            nightly(cron="5-1 * * * *"),
            "run_config.schedules.nightly.cron: cron field '5-1' in '5-1 * * * *': the "
            "minute range '5-1' runs backwards (5 > 1): write the smaller bound first, e.g. 1-5",
        ),
        (nightly(cron="0 6 * DEC-JAN *"), "the month range 'DEC-JAN' runs backwards (12 > 1)"),
        (nightly(cron="0 6 * * */0"), "bad step '0' in cron expression '0 6 * * */0': the day of week step"),
        (nightly(cron="0 6 * * FUN"), "cron field 'FUN' in '0 6 * * FUN': the day of week must be"),
        (nightly(cron="0 24 * * *"), "the hour must be '*' or numbers from 0 to 23"),
        (nightly(cron="1-2-3 * * * *"), "the minute must be '*' or numbers from 0 to 59, or a range a-b"),
        # time zones, schedule counts
        (nightly(timezone="Europe/Atlantis"), "run_config.schedules.nightly.timezone: expected an IANA time zone"),
        (nightly(max_concurrent_run_count=1001), "run_config.schedules.nightly.max_concurrent_run_count: must be less"),
        (nightly(max_run_count=0), "run_config.schedules.nightly.max_run_count: must be greater than 0"),
        (nightly(max_run_count=2**63), "run_config.schedules.nightly.max_run_count: must be less than or equal"),
        # KFP namespace, local workers
        ({"kubeflow": {"namespace": "Team_A"}}, "run_config.kubeflow.namespace: expected a Kubernetes namespace"),
        ({"local": {"max_workers": 10000}}, "run_config.local.max_workers: must be less than or equal to 1024"),
        # kedro-vertexai keys: wrong types, and an old key contradicting its new name
        (
            {"schedules": {"nightly": {"cron": "0 6 * * *", "cron_expression": "0 7 * * *"}}},
            "run_config.schedules.nightly.cron_expression: contradicts run_config.schedules.nightly.cron ('0 7 * * *' "
            "against '0 6 * * *'): keep only run_config.schedules.nightly.cron",
        ),
        (
            {
                "network": {"vpc": "projects/1/global/networks/a"},
                "vertex_ai_networking": {"vpc": "projects/1/global/networks/b"},
            },
            "run_config.vertex_ai_networking: contradicts run_config.network",
        ),
        (
            {"resources": {"train": {"gpu": 1, "nvidia.com/gpu": 2, "accelerator": "NVIDIA_TESLA_T4"}}},
            "run_config.resources.train.nvidia.com/gpu: contradicts run_config.resources.train.gpu (2 against 1)",
        ),
        ({"grouping": {"cls": 3}}, "run_config.grouping.cls: expected a class name, got 3"),
        (
            {"grouping": {"cls": "kedro_vertexai.grouping.TagNodeGrouper", "params": {1: "x", "a": 2}}},
            "run_config.grouping.params: '1' has no equivalent: remove it",
        ),
        (
            {"mlflow": {"audience": "a", "request_header_provider_params": {"client_id": "b"}}},
            "run_config.mlflow.request_header_provider_params: its client_id contradicts run_config.mlflow.audience",
        ),
    ],
)
def test_a_value_beyond_the_platform_limits_is_one_line_naming_the_key(run_config, expected):
    assert expected in config_error(run_config)


def test_values_within_the_limits_pass():
    run_config = {
        "labels": {**{f"k{n}": "v" for n in range(63)}, "\u00e9quipe": "donn\u00e9es"},  # 64, international
        "encryption_key": "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k",
        "network": {
            "psc_interface": {
                "network_attachment": "projects/p/regions/europe-west1/networkAttachments/a",
                "dns_peering": [
                    {"domain": "corp.example.com.", "target_project": "host-project", "target_network": "shared-vpc"}
                ],
            }
        },
        **nightly(cron="*/15 0-6 1,15 JAN-JUN MON-SUN", max_concurrent_run_count=1000, max_run_count=2**63 - 1),
        "local": {"max_workers": 1024},
    }
    config = validate_config({**BASE, "run_config": {**BASE["run_config"], **run_config}})
    assert len(config.run_config.labels) == 64
    assert config.run_config.schedules["nightly"].max_run_count == 2**63 - 1


def test_cmek_key_outside_the_job_region_is_one_line():
    message = config_error({"encryption_key": "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"})
    assert (
        "run_config.encryption_key: the key is in location 'us-central1', but Vertex AI needs a key in the job's "
        "region 'europe-west1'" in message
    )


def test_unknown_task_runner_tag_is_one_warning_naming_the_node(caplog: pytest.LogCaptureFixture):
    nodes = [
        node(lambda x: x, "a", "b", name="train", tags=["task_runner.paralel"]),
        node(lambda x: x, "b", "c", name="score", tags=["task_runner.sequential"]),
    ]
    with caplog.at_level(logging.WARNING):
        assert mode_for(None, nodes) == "sequential"
    lines = [r.getMessage() for r in caplog.records if "task_runner." in r.getMessage()]
    assert lines == [
        "Warning: node 'train': tag 'task_runner.paralel' names no task runner mode, so it is ignored: use "
        "task_runner.sequential, task_runner.threads, task_runner.processes"
    ]


# ----------------------------------------------------------------------------------------------------------------
# runner params, environment switches, command arguments


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"max_workers": "10000"},
            "Error: --runner-params max_workers='10000': expected a whole number from 1 to 1024",
        ),
        ({"max_workers": "0"}, "expected a whole number from 1 to 1024"),
        ({"max_workers": "1.5"}, "max_workers='1.5': expected a whole number"),
        ({"wait": "maybe"}, "Error: --runner-params wait='maybe': expected true or false"),
        ({"warm_start": "2"}, "Error: --runner-params warm_start='2': expected true or false"),
    ],
)
def test_runner_params_out_of_range_are_one_line(params, expected, capsys):
    from kedro_vertex_runner.runner import VertexRunner

    with pytest.raises(SystemExit) as info:
        VertexRunner(**params)
    assert info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and expected in err


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"KEDRO_VERTEX_WARM_START": "maybe"}, "KEDRO_VERTEX_WARM_START='maybe': expected an on/off word"),
        ({"KEDRO_VERTEX_PLAIN_LOGS": "2"}, "KEDRO_VERTEX_PLAIN_LOGS='2': expected an on/off word"),
        ({"KEDRO_VERTEX_ANONYMOUS_CREDENTIALS": "si"}, "KEDRO_VERTEX_ANONYMOUS_CREDENTIALS='si'"),
        ({"KEDRO_VERTEX_POLL_INTERVAL": "nan"}, "KEDRO_VERTEX_POLL_INTERVAL='nan': expected a number of seconds above"),
        ({"KEDRO_VERTEX_POLL_INTERVAL": "inf"}, "KEDRO_VERTEX_POLL_INTERVAL='inf'"),
        ({"KEDRO_VERTEX_POLL_INTERVAL": "0"}, "KEDRO_VERTEX_POLL_INTERVAL='0'"),
        ({"KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT": "soon"}, "KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT='soon'"),
        ({"KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT": "7200"}, "at most 3600; fix or unset it"),
    ],
)
def test_environment_switches_are_checked_in_one_line(environ, expected):
    with pytest.raises(PluginError) as info:
        check_environment(environ)
    assert expected in str(info.value) and "\n" not in str(info.value)
    check_environment(dict.fromkeys(environ, "1"))  # on, or one second: sane values pass


@pytest.fixture
def vertex_project(demo_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = demo_project / "conf" / "base" / "vertexai.yml"
    config.write_text(
        config.read_text()
        .replace("backend: local", "backend: vertex")
        .replace("root: data/vertex_runs", "root: gs://bucket/runs")
        + "  mlflow:\n    enabled: false\n"
    )
    monkeypatch.chdir(demo_project)
    monkeypatch.setenv("HOME", str(demo_project))  # no gcloud credentials
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    return demo_project


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        (["logs", ".."], {}, "Error: JOB_ID '..' is not a job id: give the id printed on submit"),
        (["logs", "a/b/c"], {}, "Error: JOB_ID 'a/b/c' is not a job id"),
        (["logs", "job-1", "--lines", "1001"], {}, "Error: Invalid value for '--lines': 1001 is not in the range"),
        (
            ["schedule", "--cron", "5-1 * * * *"],
            {},
            "Error: --cron: cron field '5-1' in '5-1 * * * *': the minute range",
        ),
        (["schedule", "--cron", "0 6 * * *", "--timezone", "Mars/Base"], {}, "Error: --timezone: expected an IANA"),
        (["ui"], {"KEDRO_VERTEX_WARM_START": "maybe"}, "Error: KEDRO_VERTEX_WARM_START='maybe': expected an on/off"),
    ],
)
def test_command_arguments_beyond_the_limits_are_one_line(vertex_project, args, environ, expected, monkeypatch):
    from kedro_vertex_runner.cli import commands

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(commands, ["vertexai", *args])
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert "Traceback" not in result.output and "credentials" not in result.output  # refused before any login


# ----------------------------------------------------------------------------------------------------------------
# node timings


def test_timings_are_never_written_through_a_link(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "timings").symlink_to(outside, target_is_directory=True)  # the index folder
    (root / "run-1").mkdir()
    (root / "run-1" / "timings").symlink_to(outside, target_is_directory=True)  # the record folder
    record_task(str(root), "run-1", ["__default__"], {"train": 1.5})
    record_task(str(root), "run-2", ["__default__"], {"train": 1.5})  # its record folder is new: written
    assert list(outside.iterdir()) == []
    assert (root / "run-2" / "timings" / "train.json").is_file()
    # a link planted at a record's name is replaced, never followed
    target = outside / "victim.json"
    (root / "run-2" / "timings" / "score.json").symlink_to(target)
    record_task(str(root), "run-2", ["__default__"], {"score": 2.0})
    assert not target.exists() and not (root / "run-2" / "timings" / "score.json").is_symlink()


def test_timing_files_honour_the_umask(tmp_path: Path):
    old = os.umask(0o027)
    try:
        record_task(str(tmp_path), "run-1", ["__default__"], {"train": 1.5})
    finally:
        os.umask(old)
    for path in (tmp_path / "run-1" / "timings" / "train.json", tmp_path / "timings" / "__default__.txt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert stat.S_IMODE((tmp_path / "timings").stat().st_mode) == 0o750


def test_corrupt_timing_records_are_ignored_with_one_warning_each(tmp_path: Path, capsys: pytest.CaptureFixture):
    record_task(str(tmp_path), "run-1", ["__default__"], {"train": 1.5})
    folder = tmp_path / "run-1" / "timings"
    (folder / "nan.json").write_text('{"nodes": {"a": NaN}}')
    (folder / "inf.json").write_text('{"nodes": {"a": 1e999}}')
    (folder / "negative.json").write_text('{"nodes": {"a": -1}}')
    (folder / "huge.json").write_text('{"nodes": {"a": 1e12}}')
    (folder / "utf16.json").write_bytes('{"nodes": {"a": 1}}'.encode("utf-16"))
    (folder / "text.json").write_text("not json")
    assert last_run_durations(str(tmp_path), ["__default__"]) == {"train": 1.5}
    lines = capsys.readouterr().err.splitlines()
    assert all(
        line.startswith("Warning: node timings ")
        and line.endswith(": ignored (delete it; it is written again by the next local run)")
        for line in lines
    ), lines
    warned = sorted(Path(line.split()[3]).name for line in lines)
    assert warned == ["huge.json", "inf.json", "nan.json", "negative.json", "text.json", "utf16.json"]


def test_compile_explain_works_with_corrupt_timings(demo_project: Path, monkeypatch: pytest.MonkeyPatch):
    runs = demo_project / "data" / "vertex_runs"
    (runs / "timings").mkdir(parents=True)
    (runs / "timings" / "__default__.txt").write_text("run-1\n")
    (runs / "timings" / "data_processing.txt").write_bytes("run-1\n".encode("utf-16"))
    (runs / "run-1" / "timings").mkdir(parents=True)
    (runs / "run-1" / "timings" / "clean_houses.json").write_text(json.dumps({"nodes": {"clean_houses": 5}}))
    (runs / "run-1" / "timings" / "bad.json").write_text('{"nodes": {"add_features": Infinity}}')
    from kedro_vertex_runner.cli import commands

    monkeypatch.chdir(demo_project)
    default = CliRunner().invoke(commands, ["vertexai", "compile", "--explain"])
    serial = CliRunner().invoke(commands, ["vertexai", "compile", "-p", "data_processing", "--explain", "-o", "s.json"])
    assert default.exit_code == 0 and serial.exit_code == 0, default.output + serial.output
    assert "Traceback" not in default.stderr + serial.stderr
    assert "node run times: 1 of 11 from the last local run" in default.stdout
    bad = runs / "run-1" / "timings" / "bad.json"
    assert [line for line in default.stderr.splitlines() if "bad.json" in line] == [
        f"Warning: node timings {bad} holds 'inf', not a duration from 0 to 2592000 s: ignored (delete it; it is "
        "written again by the next local run)"
    ]
    index = runs / "timings" / "data_processing.txt"
    assert [line for line in serial.stderr.splitlines() if "data_processing.txt" in line] == [
        f"Warning: node timings {index} is not UTF-8 text: ignored (delete it; it is written again by the next "
        "local run)"
    ]
