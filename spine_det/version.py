"""The package's version, in one place (setup.py reads it; ``spine_det.__version__`` re-exports it).
A module of its own so that any layer can stamp it into the files it writes without importing the
package's top level."""
__version__ = "0.1.0"
