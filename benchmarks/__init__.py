"""Performance benchmarks: each prints a ratio against a reference measured in the same run.

``python benchmarks/run.py`` runs them all and writes ``results/benchmarks.md``; the other modules
run one comparison each and lend their pieces to it.
"""
