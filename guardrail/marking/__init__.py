"""Marks that lead an image back to its call: the imperceptible watermark (a token in the pixels, logged
with the call), the fingerprint registry, and the tracing that reads them."""
