"""Per-engine, per-version mapping from a plan's worker to the engine's command line."""
