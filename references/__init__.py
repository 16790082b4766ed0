"""Independent NumPy re-implementations (oracles of the parity tests) and the shared cases."""
