"""``fraudstream``'s entry point: a project error that escapes a command is one red line and its family's exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from support import BIN, IMPORT_BLOCKER

import fraudstream.services.cli as cli
from fraudstream.model.bundle import BundleError
from fraudstream.model.errors import MissingExtra, exit_codes
from fraudstream.model.schema import InvalidTransaction
from fraudstream.services.kafka.topics import TopicError
from fraudstream.services.runners.checkpoint import CheckpointMismatch
from fraudstream.services.sources.mapping import MappingError
from fraudstream.services.stores.alerts.base import StoreUnavailable

# A Python that cannot import the optional libraries named in argv[1] (comma-separated), then runs the CLI.
BLOCKED_CLI = """
import sys
blocked = set(sys.argv.pop(1).split(","))
""" + IMPORT_BLOCKER + """
from fraudstream.services.cli import main
sys.argv[0] = "fraudstream"
main()
"""


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException) -> tuple[int, str]:
    """Run :func:`cli.main` with a one-command app that raises ``error``; (exit code, stderr)."""
    app = typer.Typer()

    @app.command()
    def broken() -> None:
        raise error

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["fraudstream"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(InvalidTransaction("amount", "must be positive"), 2, id="input-InvalidTransaction"),
        pytest.param(MappingError("unknown key 'amout' in mapping.toml"), 2, id="input-MappingError"),
        pytest.param(StoreUnavailable("Elasticsearch at http://127.0.0.1:9200 did not answer for 30 s"), 3, id="service-StoreUnavailable"),
        pytest.param(TopicError("cannot create topic 'transactions.scored': InvalidReplicationFactorError: "
                                "Replication factor: 3 larger than available brokers: 2."), 3, id="service-TopicError"),
        pytest.param(BundleError("bundle.json: checksum of detector.npz does not match"), 4, id="integrity-BundleError"),
        pytest.param(CheckpointMismatch("var/alerts.checkpoint belongs to another source"), 4, id="integrity-CheckpointMismatch"),
        pytest.param(MissingExtra("kafka", "the Kafka runner"), 5, id="extra-MissingExtra"),
    ],
)
def test_a_project_error_is_one_line_and_its_family_exit_code(
    error: Exception, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, err = run_main(monkeypatch, capsys, error)
    assert exit_code == code
    assert "Traceback" not in err
    assert err.strip().splitlines() == [f"error: {error}"]


def test_a_multi_line_message_is_still_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, err = run_main(monkeypatch, capsys, BundleError("no model bundle at var/model\nTrain one with: fraudstream train"))
    assert exit_code == 4
    assert err.strip().splitlines() == ["error: no model bundle at var/model; Train one with: fraudstream train"]


def test_a_message_with_markup_is_printed_verbatim(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = run_main(monkeypatch, capsys, MappingError("no such mapping: export[final].toml"))
    assert err.strip() == "error: no such mapping: export[final].toml"


def test_an_unexpected_exception_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(lambda: 1 / 0)
    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["fraudstream"])
    with pytest.raises(ZeroDivisionError):
        cli.main()


def test_an_unguarded_import_of_an_optional_library_ends_as_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code, err = run_main(monkeypatch, capsys, ModuleNotFoundError("No module named 'sklearn'", name="sklearn"))
    assert exit_code == 5
    assert err.strip() == "error: this command needs sklearn, which is not installed: pip install 'fraudstream[train]'"


def test_a_missing_module_that_is_not_an_extra_is_a_bug(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ModuleNotFoundError):
        run_main(monkeypatch, capsys, ModuleNotFoundError("No module named 'numpy'", name="numpy"))


def test_help_lists_the_exit_codes() -> None:
    done = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""})
    assert done.returncode == 0
    help_text = " ".join(done.stdout.split())
    for code, meaning in exit_codes():
        assert f"{code} {meaning}" in help_text


# --------------------------------------------------------------------------- the Kafka runner's topics


class RefusingAdmin:
    """A KafkaAdminClient whose cluster has 2 live brokers, so replication 3 is refused (the broker's error 38)."""

    def list_topics(self) -> list[str]:
        return ["transactions"]  # the source exists: the runner then creates its own topics

    def describe_topics(self, topics: list[str]) -> list[dict]:
        return [{"topic": name, "partitions": [{"partition": 0}, {"partition": 1}]} for name in topics]

    def create_topics(self, request: dict, raise_errors: bool = True) -> dict:
        return {"topics": [{"name": name, "error_code": 38,
                            "error_message": "Replication factor: 3 larger than available brokers: 2."} for name in request]}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained through the CLI."""
    root = tmp_path_factory.mktemp("errors")
    for args in (["generate", "--out", root / "data.csv", "--cards", "200", "--days", "3", "--seed", "2"],
                 ["train", "--data", root / "data.csv", "--model-out", root / "model"]):
        done = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return root / "model"


def test_run_kafka_with_too_many_replicas_ends_in_one_line(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported case: a broker down, ``--replication 3``: TopicError from the runner, once a long traceback."""
    import fraudstream.services.kafka.topics as topics

    monkeypatch.setattr(topics, "admin_client", lambda settings: RefusingAdmin())
    monkeypatch.setattr(sys, "argv", ["fraudstream", "run", "--source", "kafka", "--replication", "3", "--model", str(bundle),
                                      "--store", "memory://", "--no-live-view", "--bootstrap", "127.0.0.1:1"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 3
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "error: cannot create topic 'transactions.scored': InvalidReplicationFactorError: "
        "Replication factor: 3 larger than available brokers: 2."
    ]


# --------------------------------------------------------------------------- real commands, in a subprocess


@pytest.mark.parametrize(
    ("blocked", "args", "hint"),
    [
        pytest.param("kafka", ["run", "--source", "kafka", "--no-live-view", "--store", "memory://"],
                     "the Kafka runner needs kafka, which is not installed: pip install 'fraudstream[kafka]'", id="run-kafka"),
        pytest.param("sklearn", ["train", "--data", "DATA", "--model-out", "OUT"],
                     "training an Isolation Forest needs sklearn, which is not installed: pip install 'fraudstream[train]'",
                     id="train"),
        pytest.param("elasticsearch", ["run", "--source", "file", "--data", "DATA", "--no-live-view",
                                       "--store", "elasticsearch://127.0.0.1:9"],
                     "the Elasticsearch alert store needs elasticsearch, which is not installed: pip install 'fraudstream[search]'",
                     id="run-elasticsearch"),
    ],
)
def test_a_real_command_without_its_extra_fails_with_the_install_hint(
    blocked: str, args: list[str], hint: str, bundle: Path, tmp_path: Path
) -> None:
    data = bundle.parent / "data.csv"
    argv = [str(data) if a == "DATA" else str(tmp_path / "model") if a == "OUT" else a for a in args]
    if "--model-out" not in argv:
        argv += ["--model", str(bundle)]
    done = subprocess.run([sys.executable, "-c", BLOCKED_CLI, blocked, *argv], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": ""}, cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {hint}"
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [f"error: {hint}"]


class LeaderlessAdmin(RefusingAdmin):
    """Creates the topics, but their partitions get no leader in time (brokers down): kafka-python's own timeout."""

    def list_topics(self) -> list[str]:
        return ["transactions"]  # the source exists: the runner then creates its own topics

    def describe_topics(self, topics: list[str]) -> list[dict]:
        return [{"topic": name, "partitions": [{"partition": 0}, {"partition": 1}]} for name in topics]

    def create_topics(self, request: dict, raise_errors: bool = True) -> dict:
        return {"topics": [{"name": name, "error_code": 0, "error_message": None} for name in request]}

    def wait_for_topics(self, names: list[str], timeout_ms: int = 0) -> None:
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError(f"Timeout waiting for topics {names} to be ready")


def test_run_kafka_when_new_topics_get_no_leader_ends_in_one_line(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fraudstream.services.kafka.topics as topics

    monkeypatch.setattr(topics, "admin_client", lambda settings: LeaderlessAdmin())
    monkeypatch.setattr(sys, "argv", ["fraudstream", "run", "--source", "kafka", "--model", str(bundle),
                                      "--store", "memory://", "--no-live-view", "--bootstrap", "127.0.0.1:1"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 3
    assert err.strip().splitlines() == [
        "error: topics 'transactions.scored', 'transactions.dlq', 'transactions.by-merchant' were created but are not "
        "ready: KafkaTimeoutError: Timeout waiting for topics ['transactions.scored', 'transactions.dlq', "
        "'transactions.by-merchant'] to be ready"
    ]
