"""Outside development, no service starts with a placeholder or short secret."""

import pytest
from pydantic import ValidationError

from common.settings import DEV_PLACEHOLDER, ServiceSettings
from gateway.config import Settings as GatewaySettings
from message_service.config import Settings as MessageSettings
from user_service.config import Settings as UserSettings
from worker.config import Settings as WorkerSettings

STRONG = "s" * 40
ALL = [GatewaySettings, UserSettings, MessageSettings, WorkerSettings]
SIGNING = [GatewaySettings, UserSettings]


@pytest.mark.parametrize("settings_class", ALL)
def test_development_accepts_the_placeholders(settings_class) -> None:
    assert (
        settings_class(environment="development").internal_token.get_secret_value()
        == DEV_PLACEHOLDER
    )


@pytest.mark.parametrize("settings_class", ALL)
@pytest.mark.parametrize("token", [DEV_PLACEHOLDER, "short-secret"])
def test_production_refuses_a_weak_internal_token(settings_class, token: str) -> None:
    with pytest.raises(ValidationError, match="ANONCHAT_INTERNAL_TOKEN"):
        settings_class(environment="production", internal_token=token, jwt_secret=STRONG)


@pytest.mark.parametrize("settings_class", SIGNING)
@pytest.mark.parametrize("secret", [DEV_PLACEHOLDER, "short-secret"])
def test_production_refuses_a_weak_signing_key(settings_class, secret: str) -> None:
    with pytest.raises(ValidationError, match="ANONCHAT_JWT_SECRET"):
        settings_class(environment="production", internal_token=STRONG, jwt_secret=secret)


@pytest.mark.parametrize("settings_class", ALL)
def test_production_starts_with_strong_secrets(settings_class) -> None:
    settings = settings_class(environment="production", internal_token=STRONG, jwt_secret=STRONG)
    assert settings.environment == "production"


def test_secrets_are_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ANONCHAT_ENVIRONMENT", "production")
    monkeypatch.setenv("ANONCHAT_INTERNAL_TOKEN", "i" * 40)
    monkeypatch.setenv("ANONCHAT_JWT_SECRET", "j" * 40)
    settings = GatewaySettings()
    assert settings.jwt_secret.get_secret_value() == "j" * 40
    assert "j" * 40 not in repr(settings)


def test_a_dotenv_file_in_the_working_directory_is_not_read(tmp_path, monkeypatch) -> None:
    (tmp_path / ".env").write_text("ANONCHAT_ENVIRONMENT=production\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANONCHAT_ENVIRONMENT", raising=False)
    assert ServiceSettings().environment == "development"
