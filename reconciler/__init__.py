"""reconciler: declarative management of product renders on the VNTANA platform."""

__version__ = "0.1.0"
