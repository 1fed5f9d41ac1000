"""How fraudstream connects to a Kafka cluster: one typed settings object, secrets from the environment.

Works for the local broker of ``scripts/services/kafka``, Strimzi on Kubernetes, Amazon MSK or any
cluster: plaintext, TLS, SASL/PLAIN and SASL/SCRAM. Built from the ``[kafka]`` section of
:mod:`fraudstream.services.settings` (every field also ``FRAUDSTREAM_KAFKA_<FIELD>``); the SASL password
is read *only* from the environment so it never appears on a command line, in a file or in logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "FRAUDSTREAM_KAFKA_"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    """Connection settings shared by the producer, the runner and the admin helpers."""

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)  # from the environment only
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    client_id: str = "fraudstream"

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, got {self.security_protocol!r}")
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ValueError(f"{self.security_protocol} needs sasl_mechanism, one of {', '.join(SASL_MECHANISMS)}")
            if not self.sasl_username or not self.sasl_password:
                raise ValueError(f"{self.security_protocol} needs a username and {ENV_PREFIX}SASL_PASSWORD in the environment")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> KafkaSettings:
        """Settings from ``FRAUDSTREAM_KAFKA_*`` variables (and ``$FRAUDSTREAM_CONFIG``'s ``[kafka]``), then explicit
        (non-None) overrides; the password is never an override. Read by :mod:`fraudstream.services.settings`."""
        from fraudstream.services.settings import load_settings

        flags = {f"kafka.{k}": v for k, v in overrides.items() if k != "sasl_password"}
        return load_settings(environ=environ, overrides=flags).kafka.connection()

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.security_protocol.startswith("SASL"):
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.security_protocol.endswith("SSL"):
            kwargs.update(
                ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        return kwargs
