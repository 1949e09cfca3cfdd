"""Docker images for models: offline base, dependency sets and the runtime image per set."""
