"""The kernel domain: starting, tracking, relaying to and executing on Jupyter kernels (no HTTP here)."""
