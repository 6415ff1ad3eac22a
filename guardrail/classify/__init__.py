"""Content classifiers: what is in an image, as label scores (and boxes where a model has them), for
the policy's `classifiers` rules to decide on."""
