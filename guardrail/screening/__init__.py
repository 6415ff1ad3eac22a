"""Screening images against protected reference sets: hashes (perceptual fingerprints), refsets
(the on-disk sets), screen (matching images against the sets a policy names)."""
