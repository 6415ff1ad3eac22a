"""Policies: schema (the YAML format), load (located errors), text (normalisation), engine (evaluate)."""
