"""What the compose file and the Kubernetes manifests are both held to: commands that name
what exists in the image, and settings read from the variables they set."""

from __future__ import annotations

import importlib
import importlib.util
import shlex
from pathlib import Path

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from stack.processes import GATEWAY_CONNECTION_LIMITS

ROOT = Path(__file__).resolve().parent.parent
# A default naming one of these suits development only (inside a container it is itself).
DEV_ONLY_HOSTS = ("127.0.0.1", "localhost")


def argv(command: str | list[str]) -> list[str]:
    """A compose command (a string or a list) as an argument list."""
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def env_names(cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The variables a field is read from: its aliases, else the class prefix + its name."""
    alias = field.validation_alias or field.alias
    if isinstance(alias, AliasChoices):
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias.upper()]
    prefix = str(cls.model_config.get("env_prefix") or "")
    return [(prefix + name).upper()]


def dev_only(name: str, field: FieldInfo) -> bool:
    """Whether a field's default suits development only: a secret, a local address or
    the environment switch itself."""
    secret = field.annotation is SecretStr or isinstance(field.default, SecretStr)
    local = any(host in str(field.default) for host in DEV_ONLY_HOSTS)
    return secret or local or name == "environment"


def module_exists(module: str) -> bool:
    """Whether ``python -m module`` would find something to run."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        return importlib.util.find_spec(f"{module}.__main__") is not None
    return True


def runnable_problem(args: list[str]) -> str | None:
    """Why ``args`` would not start in the image, or None when it names what exists."""
    if args[:2] == ["python", "-m"] and args[2:3] == ["uvicorn"]:
        module, _, factory = args[3].partition(":")
        if factory != "create_app" or "--factory" not in args:
            return f"{args[3]}: every app is built by create_app (uvicorn --factory)"
        if importlib.util.find_spec(module) is None:
            return f"no module {module}"
        if not callable(getattr(importlib.import_module(module), factory, None)):
            return f"{module} has no {factory}"
        if option(args, "--http") != "common.serving:GuardedHttpProtocol":
            return "every server runs with the request and write-stall deadlines"
        limits = GATEWAY_CONNECTION_LIMITS[::2]
        wanted = dict(zip(limits, GATEWAY_CONNECTION_LIMITS[1::2], strict=True))
        if module == "gateway.app" and {name: option(args, name) for name in limits} != wanted:
            return f"the gateway runs with the connection limits {wanted} (stack.processes)"
        return None
    if args[:2] == ["python", "-m"]:
        return None if module_exists(args[2]) else f"no module {args[2]}"
    if args[:2] == ["python", "-c"]:
        compile(args[2], "<healthcheck>", "exec")
        return None
    if args[:1] == ["alembic"]:
        config = option(args, "-c") or "alembic.ini"
        return None if (ROOT / config).is_file() else f"no {config}"
    return f"unknown command {args!r}"


def option(args: list[str], name: str) -> str | None:
    """The value after ``name`` in an argument list, if it is there."""
    return args[args.index(name) + 1] if name in args[:-1] else None
