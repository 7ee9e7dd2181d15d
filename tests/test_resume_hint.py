"""The resume command printed after a failed local run (kedro_vertex_runner.runner): the options it repeats, and
where it starts when the run cannot be resumed as a whole. The end-to-end runs of these commands are in
test_resume.py and test_e2e_local.py."""

from __future__ import annotations

from types import SimpleNamespace

from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.backends.local import TaskResult
from kedro_vertex_runner.runner import _first_difference, _print_resume_hint, _resume_starts, _run_options


def _f(*args):
    return 1


# a -> (m, in memory) -> b -> (stored) -> c ; d independent of b inside the same task ; e in another task reads c
PIPELINE = Pipeline(
    [
        node(_f, "raw", "m", name="a"),
        node(_f, "m", "stored", name="b"),
        node(_f, "stored", "x", name="c"),
        node(_f, "raw", "y", name="d"),
        node(_f, "x", "z", name="e"),
    ]
)
# declared: the failed run wrote it where the catalog says
CATALOG = DataCatalog.from_config({"stored": {"type": "pickle.PickleDataset", "filepath": "never-written.pkl"}})
TASK = ["a", "b", "c", "d"]


def test_starts_before_the_failed_node_only_for_data_kept_in_memory():
    assert _resume_starts(TASK, "b", PIPELINE, CATALOG) == {"a", "d"}  # m was never stored; d may not have run
    assert _resume_starts(TASK, "c", PIPELINE, CATALOG) == {"c", "d"}  # stored is in the catalog
    assert _resume_starts(["e"], "e", PIPELINE, CATALOG) == {"e"}  # x crossed tasks, so it was stored
    # without the catalog entry, or declared as a MemoryDataset, `stored` stayed in memory too: back to a
    assert _resume_starts(TASK, "c", PIPELINE, DataCatalog()) == {"a", "d"}
    assert _resume_starts(TASK, "c", PIPELINE, DataCatalog({"stored": MemoryDataset()})) == {"a", "d"}


def test_hint_repeats_every_option_of_the_run(capsys):
    failed = TaskResult(name="t", nodes=tuple(TASK), state="FAILED", failed_node="b")
    done = TaskResult(name="u", nodes=("e",), state="SKIPPED")
    failure = SimpleNamespace(result=SimpleNamespace(run_id="local-1", tasks={"t": failed, "u": done}))
    run_params = {
        "pipeline_names": ["model", "reporting"],
        "env": "prod",
        "tags": ["x", "y"],
        "to_nodes": ["e"],
        "node_names": [],
        "runtime_params": {"k": 1},
    }
    _print_resume_hint(failure, run_params, PIPELINE, CATALOG, backend="local")
    line = capsys.readouterr().out.strip()
    assert line == (
        "To resume the failed task(s) with this run's stored data: kedro run --runner=VertexRunner --pipelines "
        "model,reporting --env prod --tags x,y --to-nodes e --params k=1 --runner-params backend=local,resume=local-1"
    )


HOSTILE = ["two words", "a;rm -rf ~", "$(touch pwned)", 'it\'s "quoted"', "-leading-dash", "`id`|cat>x&"]


def test_hint_quotes_every_value_so_a_shell_reads_it_back_unchanged(capsys):
    import shlex

    failed = TaskResult(name="t", nodes=tuple(TASK), state="FAILED", failed_node="b")
    failure = SimpleNamespace(result=SimpleNamespace(run_id="local-1", root="/runs", tasks={"t": failed}))
    for value in HOSTILE:
        run_params = {
            "pipeline_names": [value], "env": value, "tags": [value, "x"], "to_nodes": [value],
            "runtime_params": {"k": value},
        }  # fmt: skip
        _print_resume_hint(failure, run_params, PIPELINE, CATALOG, backend="local")
        line = capsys.readouterr().out.strip()
        command = line.split(": ", 1)[1]
        words = shlex.split(command)
        assert words[:-3] == [
            "kedro", "run", "--runner=VertexRunner", "--pipeline", value, "--env", value, "--tags", f"{value},x",
            "--to-nodes", value, "--params",
        ]  # fmt: skip
        assert words[-2:] == ["--runner-params", "backend=local,resume=local-1"]
        assert _kedro_reads_params(words[-3]) == {"k": value}


def _kedro_reads_params(text: str) -> dict:
    """``--params TEXT`` as `kedro run` reads it."""
    from kedro_vertex_runner.kedro_compat import split_params

    return split_params(None, None, text)


def test_params_in_the_hint_read_back_as_the_same_values(capsys):
    import shlex

    params = {
        "alpha": 0.5, "n": 3, "flag": True, "text": "0.5", "yes": "true", "empty": "", "none": None,
        "colon": "x: y", "dash": "-draft", "quote": "it's", "nested": {"a": {"b": 1}}, "small": 1e-05,
        "inf": float("inf"), "yes_text": "yes", "tilde": "~", "hash": "#x",
    }  # fmt: skip
    failed = TaskResult(name="t", nodes=tuple(TASK), state="FAILED", failed_node="b")
    failure = SimpleNamespace(result=SimpleNamespace(run_id="local-1", root="/runs", tasks={"t": failed}))
    _print_resume_hint(failure, {"runtime_params": params}, PIPELINE, CATALOG, backend=None)
    words = shlex.split(capsys.readouterr().out.strip().split(": ", 1)[1])
    assert words[3] == "--params"
    assert _kedro_reads_params(words[4]) == params


def test_the_first_changed_option_is_named_with_both_values():
    before = _run_options({"env": "prod", "tags": ["a"], "runtime_params": {"alpha": 1, "m": {"depth": 3}}})
    assert _first_difference(before, dict(before)) is None
    for now, named in (
        ({"env": "prod", "tags": ["a"], "runtime_params": {"alpha": True, "m": {"depth": 3}}}, "--params alpha was 1, now true"),
        ({"env": "prod", "tags": ["a"], "runtime_params": {"alpha": 1, "m": {"depth": 4}}}, "--params m.depth was 3, now 4"),
        ({"env": "prod", "tags": ["a"], "runtime_params": {"alpha": 1}}, "--params m.depth was 3, now not given"),
        ({"env": "prod", "tags": ["a", "b"], "runtime_params": {}}, "--tags was a, now a,b"),
        ({"tags": ["a"], "runtime_params": {"alpha": 1, "m": {"depth": 3}}}, "--env was prod, now not given"),
    ):  # fmt: skip
        assert _first_difference(before, _run_options(now)) == named


def test_hint_after_missing_stored_data_names_an_earlier_run_never_this_one(capsys, tmp_path):
    import shlex

    from kedro_vertex_runner.task.persistence import file_name

    failed = TaskResult(name="t", nodes=("e",), state="FAILED", failed_node="e", missing_data="x")
    failure = SimpleNamespace(result=SimpleNamespace(run_id="new-run", root=str(tmp_path), tasks={"t": failed}))
    (tmp_path / "new-run").mkdir()  # the run that just failed stored nothing
    _print_resume_hint(failure, {"from_nodes": ["e"]}, PIPELINE, CATALOG, backend=None)
    line = capsys.readouterr().out.strip()
    assert line.startswith("Run new-run has no stored 'x' to resume from; ")
    assert shlex.split(line.split(": ", 1)[1])[-2:] == ["--runner-params", "run_id=EARLIER_RUN_ID"]

    # with earlier runs under the local root, the newest one that stored the dataset is named
    for run_id, stored in (("old-with-x", True), ("newer-without-x", False)):
        (tmp_path / run_id).mkdir()
        if stored:
            (tmp_path / run_id / file_name("x")).write_bytes(b"stored")
    _print_resume_hint(failure, {"from_nodes": ["e"]}, PIPELINE, CATALOG, backend=None)
    words = shlex.split(capsys.readouterr().out.strip().split(": ", 1)[1])
    assert words[-4:] == ["--from-nodes", "e", "--runner-params", "run_id=old-with-x"]


def test_hint_without_a_named_node_and_none_for_a_failed_exit_handler(capsys):
    # a task killed before it named a node: resuming runs it whole, so the command is printed all the same
    unnamed = TaskResult(name="t", nodes=tuple(TASK), state="FAILED", failed_node=None)
    failure = SimpleNamespace(result=SimpleNamespace(run_id="local-1", root="/runs", tasks={"t": unnamed}))
    _print_resume_hint(failure, {}, PIPELINE, CATALOG, backend=None)
    assert capsys.readouterr().out.strip() == (
        "To resume the failed task(s) with this run's stored data: kedro run --runner=VertexRunner --runner-params "
        "resume=local-1"
    )
    # only the exit handler (nodes of another pipeline) failed: nothing to resume
    handler = TaskResult(name="exit", nodes=("notify",), state="FAILED", failed_node="notify")
    failure = SimpleNamespace(result=SimpleNamespace(run_id="local-1", root="/runs", tasks={"exit": handler}))
    _print_resume_hint(failure, {}, PIPELINE, CATALOG, backend=None)
    assert capsys.readouterr().out == ""
