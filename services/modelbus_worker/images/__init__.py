"""Docker images for models: offline base, dependency sets and per-model-version images."""
