"""flopgap harness: CLI, zoo, measurement, store and analysis."""

__version__ = "0.1.0"
