"""Topic admin: create the topics a pipeline needs, once, and leave existing ones alone.

``ensure_topic(settings, "transactions", partitions=4)`` creates the topic if it is missing and
returns whether it did; a topic that exists (even one created by a racing process a moment
earlier) is not an error. ``ensure_topics`` does several in one request. A cluster that cannot be
reached raises :class:`KafkaUnavailable`, with the address in its message, so every command can
print one line instead of a traceback.

kafka-python 3 has no ``NoBrokersAvailable``: a client that cannot bootstrap raises
``KafkaTimeoutError("Unable to bootstrap from [...]")`` from its constructor; both are translated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fraudstream.model.errors import ServiceError, require
from fraudstream.services.kafka.settings import KafkaSettings

__all__ = [
    "BOOTSTRAP_TIMEOUT_MS",
    "KafkaUnavailable",
    "TopicError",
    "TopicSpec",
    "admin_client",
    "ensure_topic",
    "ensure_topics",
    "unreachable",
]

# How long a client tries to reach the cluster before we call it unreachable (kafka-python: 30 s).
BOOTSTRAP_TIMEOUT_MS = 10_000
TOPIC_READY_TIMEOUT_MS = 30_000  # a new topic's partitions need leaders before producers can use it
_TOPIC_ALREADY_EXISTS = 36  # the broker's error code (kafka.errors.TopicAlreadyExistsError.errno)


class KafkaUnavailable(ServiceError, ConnectionError):
    """No broker of ``bootstrap`` answered within :data:`BOOTSTRAP_TIMEOUT_MS`."""

    def __init__(self, bootstrap: str, detail: str = "") -> None:
        self.bootstrap = bootstrap
        super().__init__(f"cannot reach Kafka at {bootstrap}" + (f" ({detail})" if detail else ""))


class TopicError(ServiceError, RuntimeError):
    """The cluster answered but would not create a topic (bad replication factor, no permission...)."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic as a pipeline wants it; ``config`` holds topic settings such as ``retention.ms``."""

    name: str
    partitions: int = 4
    replication: int = 1
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a topic needs a name")
        if self.partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {self.partitions}")
        if self.replication < 1:
            raise ValueError(f"replication must be at least 1, got {self.replication}")


def unreachable(error: BaseException) -> bool:
    """Whether a kafka-python error raised while connecting means that no broker could be reached."""
    import kafka.errors as errors

    no_brokers = getattr(errors, "NoBrokersAvailable", None)  # kafka-python 2.x
    if no_brokers is not None and isinstance(error, no_brokers):
        return True
    return isinstance(error, errors.KafkaTimeoutError) and "bootstrap" in str(error).lower()


def admin_client(settings: KafkaSettings) -> Any:
    """A connected ``KafkaAdminClient`` (close it), or :class:`KafkaUnavailable`."""
    KafkaAdminClient = require("kafka", "Kafka").KafkaAdminClient
    try:
        return KafkaAdminClient(**settings.client_kwargs(), bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except Exception as error:
        if unreachable(error):
            raise KafkaUnavailable(settings.bootstrap) from error
        raise


def ensure_topic(
    settings: KafkaSettings,
    name: str,
    partitions: int = 4,
    replication: int = 1,
    config: dict[str, str] | None = None,
    *,
    admin: Any = None,
) -> bool:
    """Create topic ``name`` unless it exists; True if this call created it.

    An existing topic is left as it is, whatever its partitions and settings. ``admin`` is an open
    ``KafkaAdminClient`` to reuse (left open); without one, a client is opened and closed here.
    """
    spec = TopicSpec(name, partitions, replication, dict(config or {}))
    return ensure_topics(settings, [spec], admin=admin)[name]


def partition_count(admin: Any, topic: str) -> int:
    """How many partitions ``topic`` has (it must exist), asked through an open ``KafkaAdminClient``."""
    (description,) = admin.describe_topics([topic])
    partitions = description.get("partitions") or []
    if not partitions:
        raise TopicError(f"topic {topic!r} has no partitions (does it exist?)")
    return len(partitions)


def ensure_topics(
    settings: KafkaSettings, topics: Iterable[TopicSpec | str], *, admin: Any = None
) -> dict[str, bool]:
    """Create each missing topic in one request; ``{name: created}`` in the order given.

    A plain string is a topic with the :class:`TopicSpec` defaults. Raises :class:`TopicError` if
    the cluster refuses a topic for any reason other than that it exists already.
    """
    specs = [TopicSpec(t) if isinstance(t, str) else t for t in topics]
    if not specs:
        return {}
    if len({s.name for s in specs}) != len(specs):
        raise ValueError("a topic is named twice")
    own = admin is None
    client = admin_client(settings) if own else admin
    try:
        return _create(client, specs)
    finally:
        if own:
            client.close()


def _create(admin: Any, specs: list[TopicSpec]) -> dict[str, bool]:
    from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    request = {
        s.name: {
            "num_partitions": s.partitions,
            "replication_factor": s.replication,
            "configs": {str(k): str(v) for k, v in s.config.items()},
        }
        for s in specs
    }
    try:
        response = admin.create_topics(request, raise_errors=False)
    except TopicAlreadyExistsError:  # a client that raises anyway: only possible with one topic
        if len(specs) == 1:
            return {specs[0].name: False}
        raise
    except KafkaError as error:  # no answer in time, no controller...: ours, so the CLI prints one line
        raise TopicError(f"cannot create topics {_names(specs)}: {error}") from error  # str() names the class
    codes = {t["name"]: (t.get("error_code", 0), t.get("error_message")) for t in response["topics"]}
    created: dict[str, bool] = {}
    for spec in specs:
        code, message = codes.get(spec.name, (0, None))
        if code == _TOPIC_ALREADY_EXISTS:
            created[spec.name] = False
        elif code == 0:
            created[spec.name] = True
        else:
            error = for_code(code)
            raise TopicError(f"cannot create topic {spec.name!r}: {error.__name__}: {message or error.description}")
    new = [name for name, was_created in created.items() if was_created]
    if new:
        try:
            admin.wait_for_topics(new, timeout_ms=TOPIC_READY_TIMEOUT_MS)
        except KafkaError as error:  # partitions without a leader in time (brokers down)
            raise TopicError(f"topics {_names(new)} were created but are not ready: {error}") from error
    return created


def _names(topics: Iterable[TopicSpec | str]) -> str:
    return ", ".join(repr(t.name if isinstance(t, TopicSpec) else t) for t in topics)
