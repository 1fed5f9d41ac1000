"""The one settings object: defaults < file < environment < flags, unknown keys refused, secrets never shown."""

from __future__ import annotations

import ast
import logging
import re
import subprocess
from pathlib import Path

import pytest
from support import BIN, ROOT
from typer.testing import CliRunner

from fraudstream.services import defaults
from fraudstream.services.cli import app
from fraudstream.services.kafka.settings import KafkaSettings
from fraudstream.services.api.lambda_function import SECRET_VARIABLES
from fraudstream.services.settings import CONFIG_ENV, Settings, SettingsError, env_names, load_settings
from fraudstream.services.stores.alerts.search_engine import SearchEngineSettings

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
SECRET = "s3cret-do-not-show"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FRAUDSTREAM_* variable of the machine running the tests leaks into them."""
    import os

    for name in [n for n in os.environ if n.startswith("FRAUDSTREAM_")]:
        monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- precedence


def test_each_layer_outranks_the_one_below(tmp_path: Path) -> None:
    config = write(tmp_path / "fraudstream.toml", '[kafka]\nbootstrap = "file:9092"\ngroup = "file-group"\ntopic = "file-topic"\n')
    env = {"FRAUDSTREAM_KAFKA_GROUP": "env-group", "FRAUDSTREAM_KAFKA_TOPIC": "env-topic"}
    s = load_settings(config, environ=env, overrides={"kafka.topic": "flag-topic", "kafka.group": None})
    assert s.kafka.client_id == "fraudstream" and s.origin("kafka.client_id") == "default"
    assert s.kafka.bootstrap == "file:9092" and s.origin("kafka.bootstrap") == f"file {config}"
    assert s.kafka.group == "env-group" and s.origin("kafka.group") == "env FRAUDSTREAM_KAFKA_GROUP"
    assert s.kafka.topic == "flag-topic" and s.origin("kafka.topic") == "flag"


def test_the_file_comes_from_the_environment_unless_given(tmp_path: Path) -> None:
    from_env = write(tmp_path / "env.toml", '[store]\nurl = "env-file.db"\n')
    given = write(tmp_path / "given.toml", '[store]\nurl = "given-file.db"\n')
    assert load_settings(environ={CONFIG_ENV: str(from_env)}).store.url == "env-file.db"
    assert load_settings(given, environ={CONFIG_ENV: str(from_env)}).store.url == "given-file.db"
    assert load_settings(environ={}).store.url == defaults.STORE


def test_empty_variables_count_as_unset() -> None:
    s = load_settings(environ={"FRAUDSTREAM_STORE": "", "FRAUDSTREAM_KAFKA_BOOTSTRAP": ""})
    assert s.model_dump() == Settings().model_dump() and s.origin("store.url") == "default"


def test_flags_outrank_variables_which_outrank_the_file_through_the_command_line(tmp_path: Path) -> None:
    # score loads the model first: the error names the bundle directory that won.
    data = write(tmp_path / "t.csv", "transaction_id\n")
    config = write(tmp_path / "c.toml", f'[paths]\nmodel = "{tmp_path / "from-file"}"\n')
    args = ["--config", str(config), "score", "--data", str(data), "--out", str(tmp_path / "o.csv")]
    env = {**WIDE, "FRAUDSTREAM_MODEL": str(tmp_path / "from-env")}
    assert "from-file" in runner.invoke(app, args, env=WIDE).output
    assert "from-env" in runner.invoke(app, args, env=env).output
    flagged = runner.invoke(app, [*args, "--model", str(tmp_path / "from-flag")], env=env)
    assert "from-flag" in flagged.output and flagged.exit_code == 4


def test_config_shows_each_value_and_where_it_came_from(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[pipeline]\nmax_ahead_hours = 6\n[dashboard]\nport = 9000\n')
    result = runner.invoke(app, ["--config", str(config), "config"], env={**WIDE, "FRAUDSTREAM_DASHBOARD_PORT": "9100"})
    assert result.exit_code == 0, result.output
    assert f"max_ahead_hours = 6.0  # file {config} · FRAUDSTREAM_PIPELINE_MAX_AHEAD_HOURS" in result.output
    assert "port = 9100  # env FRAUDSTREAM_DASHBOARD_PORT" in result.output
    assert 'bootstrap = "127.0.0.1:9092"  # default · FRAUDSTREAM_KAFKA_BOOTSTRAP' in result.output
    changed = runner.invoke(app, ["--config", str(config), "config", "--changed"], env=WIDE)
    assert "max_ahead_hours" in changed.output and "bootstrap" not in changed.output


def test_the_event_time_window_flags_outrank_the_settings(tmp_path: Path) -> None:
    from fraudstream.services.cli.common import event_window, settings

    s = load_settings(write(tmp_path / "c.toml", '[pipeline]\nnot_before = "2020-01-01"\nmax_ahead_hours = 2\n'))
    window = event_window(s.pipeline.not_before, s.pipeline.max_ahead_hours)
    assert window.not_before_ms == s.pipeline.not_before_ms == 1_577_836_800_000 and window.max_ahead_ms == 7_200_000
    assert settings(pipeline__max_ahead_hours=None).pipeline.max_ahead_hours == 24.0  # no context: no file


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "text, named",
    [
        ('[kafka]\nbootsrap = "b:9092"\n', "kafka.bootsrap"),
        ('[kafak]\nbootstrap = "b:9092"\n', "[kafak]"),
        ('store = "x.db"\n', "store"),
        ('[kafka]\nsasl_password = "p"\n', "FRAUDSTREAM_KAFKA_SASL_PASSWORD"),
        ('[card_ids]\nkey = "k"\n', "FRAUDSTREAM_CARD_ID_KEY"),
        ("[kafka\n", "not valid TOML"),
        ('[dashboard]\nport = "many"\n', "dashboard.port"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(named)) as caught:
        load_settings(write(tmp_path / "bad.toml", text), environ={})
    assert caught.value.exit_code == 2 and isinstance(caught.value, ValueError)


def test_a_missing_file_is_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_bad_values_name_the_variable_they_came_from() -> None:
    with pytest.raises(SettingsError, match=r"pipeline\.not_before \(env FRAUDSTREAM_PIPELINE_NOT_BEFORE\)"):
        load_settings(environ={"FRAUDSTREAM_PIPELINE_NOT_BEFORE": "yesterday"})
    with pytest.raises(SettingsError, match=r"dashboard\.port \(flag\)"):
        load_settings(environ={}, overrides={"dashboard.port": 0})
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(environ={}, overrides={"kafka.nope": 1})


def test_an_unknown_key_ends_the_command_as_one_line_with_exit_code_2(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", '[kafka]\nbootsrap = "b:9092"\n')
    done = subprocess.run([str(BIN), "--config", str(config), "config"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"}, timeout=120)
    assert done.returncode == 2, done
    assert "error:" in done.stderr and "kafka.bootsrap" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- secrets


SECRETS = {
    "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "FRAUDSTREAM_KAFKA_SASL_USERNAME": "fraud", "FRAUDSTREAM_KAFKA_SASL_PASSWORD": SECRET,
    "FRAUDSTREAM_ES_API_KEY": SECRET, "FRAUDSTREAM_OPENSEARCH_PASSWORD": SECRET, "FRAUDSTREAM_CARD_ID_KEY": SECRET,
}


def test_secrets_are_masked_in_the_config_output() -> None:
    result = runner.invoke(app, ["config"], env={**WIDE, **SECRETS})
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    for line in ('sasl_password = "********"  # env FRAUDSTREAM_KAFKA_SASL_PASSWORD',
                 'key = "********"  # env FRAUDSTREAM_CARD_ID_KEY', 'api_key = "********"  # env FRAUDSTREAM_ES_API_KEY'):
        assert line in result.output


def test_secrets_never_reach_reprs_logs_or_error_messages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s = load_settings(environ=SECRETS)
    connection = s.kafka.connection()
    engine = SearchEngineSettings.from_url("", s.elasticsearch)
    logging.getLogger("fraudstream.test").info("settings %s %r %r %r", s, s, connection, engine)
    assert SECRET not in caplog.text and SECRET not in str(s.model_dump())
    # ...but the clients get them
    assert connection.client_kwargs()["sasl_plain_password"] == SECRET and engine.api_key == SECRET
    assert s.card_ids.key is not None and s.card_ids.key.get_secret_value() == SECRET
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={**SECRETS, "FRAUDSTREAM_DASHBOARD_PORT": "x"})
    assert SECRET not in str(caught.value)


def test_no_flag_takes_a_secret() -> None:
    from fraudstream.services.cli.common import settings as cli_settings

    commands = (ROOT / "services" / "cli").glob("*.py")
    text = " ".join(path.read_text(encoding="utf-8") for path in commands)
    secret_keys = [key for key in env_names().values() if key.split(".")[1] in ("sasl_password", "api_key", "password", "key")]
    assert secret_keys and not any(key.replace(".", "__") + "=" in text for key in secret_keys)
    assert cli_settings().kafka.sasl_password is None


# --------------------------------------------------------------------------- compatibility


LEGACY = [  # every variable the README documented before the settings object, and where it lands now
    ("FRAUDSTREAM_KAFKA_BOOTSTRAP", "b1:9096,b2:9096", "kafka.bootstrap", "b1:9096,b2:9096"),
    ("FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL", "SSL", "kafka.security_protocol", "SSL"),
    ("FRAUDSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256", "kafka.sasl_mechanism", "SCRAM-SHA-256"),
    ("FRAUDSTREAM_KAFKA_SASL_USERNAME", "analyst", "kafka.sasl_username", "analyst"),
    ("FRAUDSTREAM_KAFKA_SASL_PASSWORD", "pw", "kafka.sasl_password", "pw"),
    ("FRAUDSTREAM_KAFKA_SSL_CAFILE", "/etc/ca.pem", "kafka.ssl_cafile", "/etc/ca.pem"),
    ("FRAUDSTREAM_KAFKA_SSL_CERTFILE", "/etc/c.pem", "kafka.ssl_certfile", "/etc/c.pem"),
    ("FRAUDSTREAM_KAFKA_SSL_KEYFILE", "/etc/k.pem", "kafka.ssl_keyfile", "/etc/k.pem"),
    ("FRAUDSTREAM_KAFKA_SSL_CHECK_HOSTNAME", "false", "kafka.ssl_check_hostname", False),
    ("FRAUDSTREAM_KAFKA_CLIENT_ID", "me", "kafka.client_id", "me"),
    ("FRAUDSTREAM_ES_URL", "https://a:9200,https://b:9200", "elasticsearch.url", "https://a:9200,https://b:9200"),
    ("FRAUDSTREAM_ES_API_KEY", "k", "elasticsearch.api_key", "k"),
    ("FRAUDSTREAM_ES_USERNAME", "u", "elasticsearch.username", "u"),
    ("FRAUDSTREAM_ES_PASSWORD", "p", "elasticsearch.password", "p"),
    ("FRAUDSTREAM_ES_CA_CERTS", "/etc/es.pem", "elasticsearch.ca_certs", "/etc/es.pem"),
    ("FRAUDSTREAM_ES_VERIFY_CERTS", "0", "elasticsearch.verify_certs", False),
    ("FRAUDSTREAM_OPENSEARCH_URL", "http://o:9201", "opensearch.url", "http://o:9201"),
    ("FRAUDSTREAM_OPENSEARCH_API_KEY", "k", "opensearch.api_key", "k"),
    ("FRAUDSTREAM_OPENSEARCH_USERNAME", "u", "opensearch.username", "u"),
    ("FRAUDSTREAM_OPENSEARCH_PASSWORD", "p", "opensearch.password", "p"),
    ("FRAUDSTREAM_OPENSEARCH_CA_CERTS", "/etc/os.pem", "opensearch.ca_certs", "/etc/os.pem"),
    ("FRAUDSTREAM_OPENSEARCH_VERIFY_CERTS", "false", "opensearch.verify_certs", False),
    ("FRAUDSTREAM_STORE", "elasticsearch://h:9200", "store.url", "elasticsearch://h:9200"),
    ("FRAUDSTREAM_MODEL", "models/v2", "paths.model", Path("models/v2")),
    ("FRAUDSTREAM_CARD_ID_KEY", "hmac-key", "card_ids.key", "hmac-key"),
]


@pytest.mark.parametrize("name, raw, key, expected", LEGACY, ids=[row[0] for row in LEGACY])
def test_every_historical_variable_still_sets_its_setting(name: str, raw: str, key: str, expected: object) -> None:
    s = load_settings(environ={name: raw})
    value = s.get(key)
    assert (value.get_secret_value() if hasattr(value, "get_secret_value") else value) == expected
    assert s.origin(key) == f"env {name}"


def test_every_variable_the_docs_name_is_a_setting() -> None:
    documented = set()
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        documented |= set(re.findall(r"FRAUDSTREAM_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", path.read_text(encoding="utf-8")))  # not prefixes
    documented -= {CONFIG_ENV}
    documented = {n for n in documented if not n.startswith("FRAUDSTREAM_TEST_") and n != "FRAUDSTREAM_CACHE"}
    documented -= set(SECRET_VARIABLES)  # the Lambda handler's secret ARNs: they name where a setting's value is
    assert {row[0] for row in LEGACY} <= documented  # the table above is what the README has promised
    assert documented - set(env_names()) == set()
    assert set(env_names()) - documented == set()  # and the Configuration table lists every setting


def test_the_search_engine_stores_take_hosts_and_credentials_from_their_section() -> None:
    s = load_settings(environ={"FRAUDSTREAM_OPENSEARCH_URL": "https://a:9201,https://b:9201",
                               "FRAUDSTREAM_OPENSEARCH_USERNAME": "u", "FRAUDSTREAM_OPENSEARCH_PASSWORD": "p",
                               "FRAUDSTREAM_OPENSEARCH_VERIFY_CERTS": "0"})
    engine = SearchEngineSettings.from_url("?prefix=x", s.opensearch)
    assert engine.urls == ("https://a:9201", "https://b:9201") and (engine.username, engine.password) == ("u", "p")
    assert engine.verify_certs is False and SearchEngineSettings.from_url("h:1?verify_certs=1", s.opensearch).verify_certs
    with pytest.raises(ValueError, match="FRAUDSTREAM_OPENSEARCH_USERNAME"):
        SearchEngineSettings.from_url("u:p@h:9201", s.opensearch)


def test_kafka_settings_from_env_still_reads_the_same_variables() -> None:
    settings = KafkaSettings.from_env({"FRAUDSTREAM_KAFKA_BOOTSTRAP": "b:1"}, bootstrap=None, sasl_password="ignored")
    assert settings.bootstrap == "b:1" and settings.sasl_password is None
    assert KafkaSettings.from_env({}, bootstrap="flag:1").bootstrap == "flag:1"


# --------------------------------------------------------------------------- the dashboard and the core


def test_the_dashboard_reads_the_same_settings_as_the_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudstream.dashboard import data
    from fraudstream.services.cli.dashboard import environment

    config = write(tmp_path / "c.toml", f'[store]\nurl = "{tmp_path / "file.db"}"\n[paths]\nmodel = "m-file"\n')
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert data.store_url() == str(tmp_path / "file.db") == load_settings().store.url
    assert data.model_dir() == "m-file"
    monkeypatch.setenv("FRAUDSTREAM_STORE", "env.db")
    assert data.store_url() == "env.db"
    # `fraudstream dashboard --config F --store S` hands the app both: the flag as a variable, which outranks F
    env = environment("flag.db", Path("m"), config)
    assert (env["FRAUDSTREAM_STORE"], env["FRAUDSTREAM_MODEL"], env[CONFIG_ENV]) == ("flag.db", "m", str(config))
    assert load_settings(environ=env).store.url == "flag.db"


def test_the_core_and_the_adapters_never_read_the_environment() -> None:
    readers = []
    for folder in ("model", "services", "dashboard"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            # the edges: the settings, the commands, and the Lambda handler (the entry point Lambda imports)
            if path == ROOT / "services" / "settings.py" or path.parent == ROOT / "services" / "cli" \
                    or path == ROOT / "services" / "api" / "lambda_function.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                    readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if folder == "model" and isinstance(node, ast.ImportFrom) and "settings" in (node.module or ""):
                    readers.append(f"{path.relative_to(ROOT)}:{node.lineno} imports settings")
    assert readers == []


def test_the_config_output_is_a_settings_file_that_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    env = {"FRAUDSTREAM_STORE": "1", "FRAUDSTREAM_KAFKA_SSL_CHECK_HOSTNAME": "0", "FRAUDSTREAM_DASHBOARD_PORT": "9000"}
    result = runner.invoke(app, ["config"], env={**WIDE, **env})
    assert result.exit_code == 0, result.output
    again = load_settings(write(tmp_path / "again.toml", result.output), environ={})
    assert again.model_dump() == load_settings(environ=env).model_dump() and again.store.url == "1"
