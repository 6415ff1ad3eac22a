"""Provenance: C2PA manifests (manifest), signing (signing), verification (verify), a development CA (devca)."""
