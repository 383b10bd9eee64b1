"""The import contracts place every module of the engine: a new one is public or internal on purpose."""

import pkgutil
import tomllib
from pathlib import Path

import durable

ROOT = Path(__file__).resolve().parents[1]
# The engine's public face for the product (see the contract's comment in pyproject.toml).
PUBLIC = {
    "durable.client",
    "durable.clock",
    "durable.concurrency",
    "durable.conf",
    "durable.config",
    "durable.context",
    "durable.exceptions",
    "durable.lambda_service",
    "durable.logcontext",
    "durable.logger",
    "durable.metrics",
    "durable.retries",
    "durable.serdes",
    "durable.signals",
    "durable.testing",
    "durable.tracing",
    "durable.types",
    "durable.waits",
    "durable.webhooks",
}


def contract(name: str) -> dict:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def test_every_engine_module_is_either_public_or_forbidden_to_the_product():
    internal = set(contract("The product uses only the engine's public face")["forbidden_modules"])
    modules = {f"durable.{info.name}" for info in pkgutil.iter_modules(durable.__path__)}
    assert not PUBLIC & internal
    assert modules == PUBLIC | internal, "place each new module of durable/ in the contract or in PUBLIC"


def test_the_product_imports_nothing_internal_of_the_engine():
    # The contract itself (lint-imports runs it in make test): here, the product's own sources
    # say so too, so a broken contract configuration cannot hide a direct import.
    internal = contract("The product uses only the engine's public face")["forbidden_modules"]
    offenders = []
    for package in ("approvals", "api", "llm"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for line in path.read_text().splitlines():
                words = line.split()
                if line.startswith(("from ", "import ")) and any(
                    w == m or w.startswith(m + ".") for w in words[1:2] for m in internal
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: {line}")
    assert offenders == []
