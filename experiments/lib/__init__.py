"""Paper-specific problem code used by the experiments (not the library)."""
