"""servewise bench: load a live OpenAI-compatible endpoint, compare with the plan, calibrate."""
