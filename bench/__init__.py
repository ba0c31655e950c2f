"""bibev's benchmarks (not tests): ``uv run python -m bench <name> [--size S] [--json]``.

Each benchmark is a module ``bench/<name>.py`` with a ``main(argv) -> int``; the dispatcher in
``bench/__main__.py`` finds them by name, so adding one is adding a module.
"""
