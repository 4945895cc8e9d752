"""Notebook services: many notebooks, each deployed, versioned, reloaded and rolled back at run time."""
