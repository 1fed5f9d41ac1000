"""fraudstream's one typed settings object: defaults < a TOML file < ``FRAUDSTREAM_*`` variables < flags.

:func:`load_settings` is the only place that reads the environment or a settings file; everything
else receives a :class:`Settings` (or one of its sections) as an argument. ``model/`` never imports
this module. A section per area, each field with exactly one environment variable::

    [paths]      model                         FRAUDSTREAM_MODEL
    [store]      url                           FRAUDSTREAM_STORE
    [kafka]      bootstrap, security_protocol, sasl_*, ssl_*, client_id, topic, scored_topic,
                 dlq_topic, group, state_dir   FRAUDSTREAM_KAFKA_<FIELD>
    [elasticsearch] url, api_key, username, password, ca_certs, verify_certs   FRAUDSTREAM_ES_<FIELD>
    [opensearch] the same                      FRAUDSTREAM_OPENSEARCH_<FIELD>
    [pipeline]   not_before, max_ahead_hours   FRAUDSTREAM_PIPELINE_<FIELD>
    [dashboard]  address, port, base_path      FRAUDSTREAM_DASHBOARD_<FIELD>
    [card_ids]   key                           FRAUDSTREAM_CARD_ID_KEY
    [api]        state, state_ttl_days, max_batch, max_body_bytes, cors_origins, answer_cache, rate_limit, keys,
                 keys_file, label_keys, label_keys_file, insecure_no_auth   FRAUDSTREAM_API_<FIELD>

The alert store's backend is chosen by the scheme of ``store.url`` (the registry's one line per
backend); each search engine has its own section for what a URL must not carry (credentials).
Secrets are :class:`~pydantic.SecretStr` (masked in ``repr``, ``str`` and ``fraudstream config``) and
come only from the environment: a settings file that holds one is refused, and no flag takes one.
Unknown keys in the file are refused with the key's name (:class:`SettingsError`, exit code 2).

>>> s = load_settings(environ={"FRAUDSTREAM_KAFKA_BOOTSTRAP": "b1:9092", "FRAUDSTREAM_KAFKA_SASL_PASSWORD": "pw"})
>>> s.kafka.bootstrap, s.origin("kafka.bootstrap"), s.origin("kafka.topic")
('b1:9092', 'env FRAUDSTREAM_KAFKA_BOOTSTRAP', 'default')
>>> s.kafka.sasl_password
SecretStr('**********')
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fraudstream.model.errors import InputError
from fraudstream.services import defaults

if TYPE_CHECKING:
    from fraudstream.services.kafka.settings import KafkaSettings

__all__ = [
    "CONFIG_ENV",
    "ApiSettings",
    "CardIdSettings",
    "DashboardSettings",
    "KafkaSection",
    "PathsSettings",
    "PipelineSettings",
    "SearchEngineSection",
    "Settings",
    "SettingsError",
    "StoreSettings",
    "env_names",
    "load_settings",
]

CONFIG_ENV = "FRAUDSTREAM_CONFIG"  # the settings file when --config is not given
DEFAULT = "default"
UNSET = "(not set)"


class SettingsError(InputError, ValueError):
    """A settings file or value that cannot be used: unreadable, unknown key, secret in a file, bad value."""


class Section(BaseModel):
    """One area's settings: typed, immutable, unknown keys refused; ``env_prefix`` + FIELD names its variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    env_prefix: ClassVar[str] = "FRAUDSTREAM_"

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable of field ``name`` (its ``env`` extra, else ``env_prefix`` + NAME)."""
        extra = cls.model_fields[name].json_schema_extra
        if isinstance(extra, dict) and "env" in extra:
            return str(extra["env"])
        return cls.env_prefix + name.upper()

    @classmethod
    def secrets(cls) -> tuple[str, ...]:
        """Fields holding secrets: read from the environment only, always shown masked."""
        return tuple(name for name, f in cls.model_fields.items() if _is_secret(f.annotation))


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or "SecretStr" in str(annotation)


class PathsSettings(Section):
    """Where the model bundle lives (``make demo`` trains the default one)."""

    model: Path = Field(defaults.MODEL_DIR, json_schema_extra={"env": "FRAUDSTREAM_MODEL"})


class StoreSettings(Section):
    """The alert store ``run`` writes and the dashboard reads; the URL's scheme chooses the backend."""

    url: str = Field(defaults.STORE, min_length=1, json_schema_extra={"env": "FRAUDSTREAM_STORE"})


class KafkaSection(Section):
    """Connection (plaintext, TLS, SASL), topics, consumer group and snapshot directory of the Kafka runtimes."""

    env_prefix = "FRAUDSTREAM_KAFKA_"
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    client_id: str = "fraudstream"
    topic: str = "transactions"
    scored_topic: str = "transactions.scored"
    dlq_topic: str = "transactions.dlq"
    group: str = "fraudstream"
    state_dir: Path = defaults.KAFKA_STATE_DIR

    def connection(self) -> KafkaSettings:
        """The client connection settings (checked here: SASL needs a mechanism, a user and a password)."""
        from fraudstream.services.kafka.settings import KafkaSettings

        return KafkaSettings(
            bootstrap=self.bootstrap, security_protocol=self.security_protocol, sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
            ssl_check_hostname=self.ssl_check_hostname, client_id=self.client_id,
        )


class SearchEngineSection(Section):
    """How to reach a search engine when the store URL names no host, and the credentials a URL must not carry."""

    url: str
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: str | None = None
    verify_certs: bool = True

    @property
    def urls(self) -> tuple[str, ...]:
        """``url`` split on commas (several nodes of one cluster)."""
        return tuple(u.strip().rstrip("/") for u in self.url.split(",") if u.strip())


class ElasticsearchSection(SearchEngineSection):
    env_prefix = "FRAUDSTREAM_ES_"
    url: str = "http://127.0.0.1:9200"


class OpenSearchSection(SearchEngineSection):
    env_prefix = "FRAUDSTREAM_OPENSEARCH_"
    url: str = "http://127.0.0.1:9201"


class PipelineSettings(Section):
    """The event-time window every intake applies (earlier or too-far-ahead rows are dead letters)."""

    env_prefix = "FRAUDSTREAM_PIPELINE_"
    not_before: str = "2000-01-01"
    max_ahead_hours: float = Field(24.0, ge=0, lt=1e6)

    @field_validator("not_before")
    @classmethod
    def _a_time(cls, value: str) -> str:
        from fraudstream.model.schema import InvalidTransaction, parse_timestamp

        try:
            parse_timestamp(value if "T" in value else f"{value}T00:00:00Z")
        except InvalidTransaction as error:
            raise ValueError(f"must be a date (YYYY-MM-DD) or an RFC 3339 time: {error.reason}") from None
        return value

    @property
    def not_before_ms(self) -> int:
        """``not_before`` as epoch milliseconds (a bare date means its midnight UTC)."""
        from fraudstream.model.schema import parse_timestamp

        return parse_timestamp(self.not_before if "T" in self.not_before else f"{self.not_before}T00:00:00Z")[0]


class DashboardSettings(Section):
    """Where ``fraudstream dashboard`` serves (it reads ``store.url`` and ``paths.model`` like every command)."""

    env_prefix = "FRAUDSTREAM_DASHBOARD_"
    address: str = "127.0.0.1"
    port: int = Field(8501, ge=1, le=65535)
    base_path: str = ""


class CardIdSettings(Section):
    """The HMAC key that turns card numbers into stable pseudonymous card ids (same key on every runtime)."""

    key: SecretStr | None = Field(None, json_schema_extra={"env": "FRAUDSTREAM_CARD_ID_KEY"})


class ApiSettings(Section):
    """The scoring API (``fraudstream serve``, the Lambda handler): its state store, limits, CORS and API keys.

    ``state`` is ``memory`` (one process's own state; the default) or a state-store URL such as
    ``redis://host:6379/0``. Keys are secrets (environment only); a keys file holds one key per line and is
    re-read when it changes, so a key is rotated without a restart (both keys valid while the file lists both).
    """

    env_prefix = "FRAUDSTREAM_API_"
    state: str = Field("memory", min_length=1)
    state_ttl_days: float | None = Field(None, gt=0)
    max_batch: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    cors_origins: str = ""  # comma-separated origins allowed to call from a browser; empty: CORS off
    answer_cache: int = Field(100_000, ge=0)  # first answers kept for retries (by transaction_id)
    rate_limit: float = Field(0.0, ge=0)  # requests per second per key and process; 0: no limit
    keys: SecretStr | None = None
    keys_file: Path | None = None
    label_keys: SecretStr | None = None
    label_keys_file: Path | None = None
    insecure_no_auth: bool = False  # local development only: serve without any key

    @property
    def origins(self) -> tuple[str, ...]:
        """``cors_origins`` split on commas."""
        return tuple(o.strip() for o in self.cors_origins.split(",") if o.strip())

    @property
    def state_ttl_ms(self) -> int | None:
        """``state_ttl_days`` in milliseconds (None: idle cards never expire, as in ``score`` and ``run``)."""
        return None if self.state_ttl_days is None else round(self.state_ttl_days * 86_400_000)


class Settings(BaseSettings):
    """Every setting of fraudstream, one section per area; build it with :func:`load_settings`.

    ``Settings()`` alone holds the defaults only: the sources (file, environment, flags) are layered
    by :func:`load_settings`, which records where each value came from (:meth:`origin`).
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    paths: PathsSettings = PathsSettings()
    store: StoreSettings = StoreSettings()
    kafka: KafkaSection = KafkaSection()
    elasticsearch: ElasticsearchSection = ElasticsearchSection()
    opensearch: OpenSearchSection = OpenSearchSection()
    pipeline: PipelineSettings = PipelineSettings()
    dashboard: DashboardSettings = DashboardSettings()
    card_ids: CardIdSettings = CardIdSettings()
    api: ApiSettings = ApiSettings()

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges the layers itself (to keep the historical variable names and to know
        # each value's origin), so the model only validates what it is given.
        return (init_settings,)

    def origin(self, key: str) -> str:
        """Where ``key`` (``section.field``) came from: ``default``, ``file PATH``, ``env NAME`` or ``flag``."""
        if key not in dict(fields()):
            raise KeyError(key)
        return self._origins.get(key, DEFAULT)

    def get(self, key: str) -> Any:
        """The value of ``section.field``."""
        section, _, name = key.partition(".")
        return getattr(getattr(self, section), name)

    def effective(self) -> list[tuple[str, str, str, str]]:
        """``(key, value as TOML or "(not set)", origin, environment variable)`` for every field; secrets masked."""
        rows = []
        for key, section in fields():
            value = self.get(key)
            name = key.partition(".")[2]
            if value is None:
                shown = UNSET
            elif isinstance(value, SecretStr):
                shown = '"********"'
            elif isinstance(value, bool):
                shown = str(value).lower()
            elif isinstance(value, (int, float)):
                shown = repr(value)
            else:
                shown = json.dumps(str(value))
            rows.append((key, shown, self.origin(key), section.env_name(name)))
        return rows


def fields() -> Iterator[tuple[str, type[Section]]]:
    """``("section.field", section class)`` for every setting, in declaration order."""
    for section_name, info in Settings.model_fields.items():
        section = info.annotation
        assert isinstance(section, type) and issubclass(section, Section)
        for name in section.model_fields:
            yield f"{section_name}.{name}", section


def env_names() -> dict[str, str]:
    """``{environment variable: "section.field"}`` for every setting."""
    return {section.env_name(key.partition(".")[2]): key for key, section in fields()}


def load_settings(
    config: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The effective settings: defaults < ``config`` (else ``$FRAUDSTREAM_CONFIG``) < environment < ``overrides``.

    ``overrides`` are the command line's flags, keyed ``section.field``; ``None`` means "not given".
    Raises :class:`SettingsError` naming the file and key for anything that cannot be used.
    """
    env = os.environ if environ is None else environ
    path = config if config is not None else (env.get(CONFIG_ENV) or None)
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((f"file {path}", _file_layer(Path(path))))
    names = env_names()
    layers.append(("env", {key: value for name, key in names.items() if (value := env.get(name, "")) != ""}))
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    for key in flags:
        if key not in dict(fields()):
            raise SettingsError(f"unknown setting {key!r}")
    layers.append(("flag", flags))

    merged: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    key_names = {key: name for name, key in names.items()}
    for label, layer in layers:
        for key, value in layer.items():
            section, _, name = key.partition(".")
            merged.setdefault(section, {})[name] = value
            origins[key] = f"env {key_names[key]}" if label == "env" else label
    try:
        settings = Settings(**merged)
    except ValidationError as error:
        raise SettingsError(_describe(error, origins)) from None
    settings._origins = origins
    return settings


def _file_layer(path: Path) -> dict[str, Any]:
    """``{"section.field": value}`` from a TOML file; unknown sections/keys and secrets are refused here."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"cannot read settings file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None
    known = {name: info.annotation for name, info in Settings.model_fields.items()}
    flat: dict[str, Any] = {}
    for section_name, table in document.items():
        section = known.get(section_name)
        if section is None:
            raise SettingsError(f"unknown section [{section_name}] in {path}; known sections: {', '.join(known)}")
        if not isinstance(table, dict):
            raise SettingsError(f"{section_name} in {path} must be a table: [{section_name}]")
        for name, value in table.items():
            if name not in section.model_fields:
                raise SettingsError(f"unknown setting {section_name}.{name} in {path}; "
                                    f"known in [{section_name}]: {', '.join(section.model_fields)}")
            if name in section.secrets():
                raise SettingsError(f"{section_name}.{name} is a secret: set it in the environment "
                                    f"({section.env_name(name)}), never in a settings file ({path})")
            flat[f"{section_name}.{name}"] = value
    return flat


def _describe(error: ValidationError, origins: Mapping[str, str]) -> str:
    """One line per bad value, naming the setting and where it came from (values of secrets never shown)."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"][:2])
        problems.append(f"{key} ({origins.get(key, DEFAULT)}): {item['msg']}")
    return "invalid settings: " + "; ".join(problems)
