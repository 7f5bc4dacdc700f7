"""A job's fixed cost is its imports (benchmarks/job_overhead.py measures them): each rule script,
imported in a fresh process, loads no heavy library its job does not use before it computes.
diffusers loads torch._dynamo (~2 s) and is imported where a backbone is built; torchvision,
clean-fid, POT and scikit-learn wait for the metrics, the figures or the network that needs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("diffusers", "torch._dynamo", "torchvision", "cleanfid", "ot", "sklearn", "timm", "pandas")
# the heavy libraries a rule's script may import at start: what every one of its jobs uses
ALLOWED = {"evaluate": (), "distill": (), "merge_chunks": (), "finetune_backbone": (), "prepare_data": (),
           "class_statistics": (), "golden_head": (), "train_teacher": (),
           # clean-fid's KID and FID (torchvision, which loads torch._dynamo), POT's OT distance (sklearn, pandas)
           "measure": ("cleanfid", "torchvision", "torch._dynamo", "ot", "sklearn", "pandas")}


@pytest.mark.parametrize("rule", sorted(ALLOWED))
def test_rule_script_imports_only_what_its_jobs_use(rule):
    probe = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'workflow' / 'scripts')!r}); import {rule}; "
             f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert loaded <= set(ALLOWED[rule]), f"{rule}.py imports {sorted(loaded - set(ALLOWED[rule]))} at start"
