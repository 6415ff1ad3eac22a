"""Shared fixtures: real tiny pipelines, real SQLite files and a real PostgreSQL database per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import guardrail
from guardrail.privacy import HmacKey

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"
POSTGRES_ADMIN_URL = os.environ.get(
    "GUARDRAIL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def hmac_key() -> HmacKey:
    return HmacKey(b"test-key-" + b"k" * 23)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"guardrail_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests ({POSTGRES_ADMIN_URL}): {exc.orig}")
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied of guardrail's tables after each test."""
    yield postgres_server_url
    import sqlalchemy as sa

    from guardrail.audit.tables import metadata

    engine = sa.create_engine(postgres_server_url)
    with engine.begin() as connection:
        for table in [*metadata.sorted_tables, sa.table("alembic_version")]:
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}" CASCADE')
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def guard(sqlite_url: str, hmac_key: HmacKey) -> Iterator[guardrail.Guard]:
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key) as g:
        yield g


_PIPELINES: dict[str, Any] = {}


@pytest.fixture
def pipelines() -> Any:
    """tiny_pipeline(kind), built once per kind per session (they are not modified by the tests)."""
    from guardrail.testing import tiny_pipeline

    def get(kind: str = "txt2img") -> Any:
        if kind not in _PIPELINES:
            pipe = tiny_pipeline(kind)
            pipe.set_progress_bar_config(disable=True)
            _PIPELINES[kind] = pipe
        return _PIPELINES[kind]

    return get


def events(guard: guardrail.Guard, call_id: str | None = None) -> list[dict[str, Any]]:
    """Every audit row (of one call, if given), oldest first."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events

    query = sa.select(audit_events).order_by(audit_events.c.seq)
    if call_id is not None:
        query = query.where(audit_events.c.call_id == call_id)
    with guard.store.engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LoRA file for the tiny UNet, made with PEFT and saved by diffusers."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from guardrail.testing import tiny_pipeline

    folder = tmp_path_factory.mktemp("lora")
    unet = tiny_pipeline("txt2img").unet
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="x"
    )
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet, adapter_name="x")
    )
    return folder


@pytest.fixture(scope="session")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from guardrail.provenance.devca import create_dev_ca

    return create_dev_ca(tmp_path_factory.mktemp("dev-ca") / "ca")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A second, unrelated development CA (its root must not make the first one's images trusted)."""
    from guardrail.provenance.devca import create_dev_ca

    return create_dev_ca(tmp_path_factory.mktemp("other-ca") / "ca")


def make_signer(dev_ca: Any, **options: Any) -> Any:
    from guardrail.provenance.signing import ImageSigner

    return ImageSigner.from_files(dev_ca.chain, dev_ca.key, **options)


@pytest.fixture
def signing_guard(sqlite_url: str, hmac_key: HmacKey, dev_ca: Any) -> Iterator[guardrail.Guard]:
    with guardrail.Guard(
        policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, signer=make_signer(dev_ca)
    ) as g:
        yield g
