"""The package version, on its own so that any module may read it without importing the package's front."""

__version__ = "0.1.0"
