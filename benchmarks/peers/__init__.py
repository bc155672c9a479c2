"""The systems `make bench-peers` compares, one module each, and the one driver that times all of them.

- `driver`: the worker side (stdlib only): the task every system does, the phases, the timing.
- `rag_system`: this project in-process (runs in the project's venv).
- `haystack_system`, `txtai_system`, `naive_system`: the peers (run in build/peers-venv, never in the product's).
- `plot`: the PNGs (matplotlib lives in the peers' venv only).
"""
