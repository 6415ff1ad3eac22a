"""Marks that lead an image back to its call: the fingerprint registry and the tracing that reads it
(the imperceptible watermark is to come)."""
