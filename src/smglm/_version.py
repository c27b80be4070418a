"""smglm's version, in a module of its own so that every layer can import it.

The root package (``smglm.__version__``) re-exports it; code inside smglm imports it from here,
because ``import smglm`` loads the root facade, which reaches the notebook and launch layers.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
