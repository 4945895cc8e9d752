"""fastkg: a Jupyter kernel gateway on FastAPI, compatible with Jupyter Kernel Gateway."""

__version__ = "0.1.0"
