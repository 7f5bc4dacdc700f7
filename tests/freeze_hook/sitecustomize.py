"""Test-only (tests/test_resume.py puts this folder on PYTHONPATH): a job process stops itself
(SIGSTOP) when it enters a chosen function for the n-th time, so that the test SIGKILLs the whole
run at a known point instead of racing the job.

``DMGD_FREEZE="<module>:<attribute path>#<n>@<text>"`` applies to the processes whose command line
contains ``<text>``; every other process, and every process without the variable, runs untouched.
"""
import os
import sys

SPEC = os.environ.get("DMGD_FREEZE", "")
if SPEC and SPEC.rpartition("@")[2] in " ".join(sys.orig_argv):
    import functools
    import importlib
    import signal

    where, _, count = SPEC.rpartition("@")[0].rpartition("#")
    module_name, _, attributes = where.partition(":")
    *path, name = attributes.split(".")
    owner = importlib.import_module(module_name)
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    entries = []

    @functools.wraps(original)
    def freeze_on_entry(*args, **kwargs):
        entries.append(None)
        if len(entries) == int(count):
            print(f"freeze_hook: stopping in {where} (entry {count})", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        return original(*args, **kwargs)

    setattr(owner, name, freeze_on_entry)
