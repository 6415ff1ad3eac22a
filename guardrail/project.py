"""Setting up a folder for guardrail: config, default policy, private HMAC key, audit database."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from guardrail._resources import data_dir
from guardrail.audit.checkpoints import create_key_files
from guardrail.audit.store import AuditStore, database_url, safe_url
from guardrail.config import CONFIG_TEMPLATE
from guardrail.errors import ConfigError
from guardrail.privacy import create_key_file
from guardrail.provenance.devca import DevCA, create_dev_ca


@dataclass(frozen=True)
class Project:
    """What init_project made: paths, whether the key is new, and the database URL (password hidden)."""

    config: Path
    policy: Path
    key: Path
    key_created: bool
    database: str
    dev_ca: DevCA | None = None


def init_project(
    directory: str | Path = ".", *, database: str | None = None, dev_ca: str | Path | None = None, force: bool = False
) -> Project:
    """Create guardrail.yaml, policies/default.yaml, .guardrail/hmac.key and the audit database, and
    with `dev_ca` a development certificate authority whose signer the config then signs with.

    Writes files. Refuses to overwrite the config or policy unless `force`; never replaces a key
    (prompt HMACs already in the log could no longer be checked) or an existing CA.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "guardrail.yaml"
    policy_file = folder / "policies" / "default.yaml"
    key_file = folder / ".guardrail" / "hmac.key"
    for path in (config_file, policy_file):
        if path.exists() and not force:
            raise ConfigError(f"{path} exists; pass force=True (--force) to overwrite it")
    text = (
        CONFIG_TEMPLATE
        if database is None
        else CONFIG_TEMPLATE.replace("database: guardrail.db", f"database: {database}")
    )
    ca = None
    if dev_ca is not None:
        ca_folder = Path(dev_ca)
        ca = DevCA(ca_folder) if DevCA(ca_folder).key.exists() else create_dev_ca(ca_folder)
        text += _provenance_section(ca, folder)
    config_file.write_text(text, encoding="utf-8")
    policy_file.parent.mkdir(exist_ok=True)
    shutil.copyfile(data_dir("policies") / "default.yaml", policy_file)
    key_created = not key_file.exists()
    if key_created:
        create_key_file(key_file)
    checkpoint_key = folder / ".guardrail" / "audit-checkpoint.key"
    if not checkpoint_key.exists():
        create_key_files(checkpoint_key)
    url = database_url(database or "guardrail.db", folder)
    AuditStore(url, migrate="auto").close()
    return Project(config_file, policy_file, key_file, key_created, safe_url(url), ca)


def _provenance_section(ca: DevCA, config_folder: Path) -> str:
    def rel(path: Path) -> str:
        return os.path.relpath(path.resolve(), config_folder.resolve())

    return (
        "# C2PA signing with the DEVELOPMENT CA made by `guardrail init --dev-ca` (not for production)\n"
        "provenance:\n"
        f"  certificate_chain: {rel(ca.chain)}\n"
        f"  private_key: {rel(ca.key)}\n"
        "  algorithm: es256\n"
        "  format: png          # png | jpeg | webp\n"
        f"  trust_anchors: {rel(ca.trust_anchors)}\n"
    )
