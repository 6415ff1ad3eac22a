"""The `guardrail` command: thin commands over the public API, one module per command group."""
