"""Shared infrastructure of every job: one-line errors, derived seeds, atomic and sealed artifacts,
checkpoints, the entry points' argument checks and exit, GPU slots. Imports no other ``evaluation``
subpackage and not ``methods`` (tests/test_import_contract.py)."""
