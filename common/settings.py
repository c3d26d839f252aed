"""The settings every service shares, and the rule that refuses placeholder secrets."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PLACEHOLDER = "dev-only-insecure-placeholder-secret"
MIN_SECRET_LENGTH = 32


def shared(name: str) -> AliasChoices:
    """Read a setting from an unprefixed ANONCHAT_* variable every service understands."""
    return AliasChoices(f"ANONCHAT_{name}")


class ServiceSettings(BaseSettings):
    """Settings common to the gateway and the services; subclasses add an env prefix."""

    # The environment only: a .env file is compose's (it substitutes it into
    # docker-compose.yml), and a service reading one from its working directory would
    # pick up whatever the folder it was started from holds (tests included).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: Literal["development", "production"] = Field(
        "development", validation_alias=shared("ENVIRONMENT")
    )
    internal_token: SecretStr = Field(
        SecretStr(DEV_PLACEHOLDER), validation_alias=shared("INTERNAL_TOKEN")
    )
    log_level: str = Field("INFO", validation_alias=shared("LOG_LEVEL"))
    # Where this process serves its Prometheus metrics (common/metrics.py); 0 serves none.
    # Several processes on one host each need a port of their own (the run command counts
    # them on from this one).
    metrics_port: int = Field(9100, ge=0, le=65535, validation_alias=shared("METRICS_PORT"))
    # Containers (compose, the Kubernetes manifests) set 0.0.0.0, for Prometheus.
    metrics_host: str = Field("127.0.0.1", validation_alias=shared("METRICS_HOST"))

    def secrets(self) -> dict[str, SecretStr]:
        """The secrets that must not keep their development placeholder in production."""
        return {"ANONCHAT_INTERNAL_TOKEN": self.internal_token}

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "development":
            return self
        for name, secret in self.secrets().items():
            value = secret.get_secret_value()
            if value == DEV_PLACEHOLDER or len(value) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"{name} must be set to a random secret of at least "
                    f"{MIN_SECRET_LENGTH} characters outside development"
                )
        return self


class TokenSettings(ServiceSettings):
    """Settings of the services that sign or verify access tokens."""

    jwt_secret: SecretStr = Field(SecretStr(DEV_PLACEHOLDER), validation_alias=shared("JWT_SECRET"))

    def secrets(self) -> dict[str, SecretStr]:
        """The internal token and the token signing key."""
        return {**super().secrets(), "ANONCHAT_JWT_SECRET": self.jwt_secret}
