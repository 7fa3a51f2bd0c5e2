"""Local model runtime: backends, model registry, the embedded default model. No Qt."""
