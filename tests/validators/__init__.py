"""Validators for rendered artifacts, used by the render tests (they read ../shared at test time)."""
