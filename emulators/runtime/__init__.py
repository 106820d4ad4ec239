"""SCF-like local runtime: runs the project's functions with SCF's event shapes and async semantics."""
