"""Internal package."""
