"""Every performance figure of the suite in one command, each measured side by side in one run.

Writes ``results/benchmarks.md`` (``--out``; ``results/benchmarks-gpu.md`` on a GPU) and prints it. Each
figure is a ratio of the suite to a reference timed in the same process, interleaved, best of
``--repeats`` rounds (a shared machine's slow spells hit both sides alike); absolute times are given
for orientation only.

1. Guided methods: DMGD, MGD³ and D⁴M per-image cost / ``dit`` per-image cost, same backbone,
   steps and batch (one sample of every class per batch, the batch DMGD's greedy matching allows),
   each ``distill`` timed end to end (backbone load, k-means, sampling, decoding).
2. Batching: the suite's batched cross-class sampling (``sampler.batch_size`` images per forward,
   classes mixed; DMGD one round of all classes per batch) against one image at a time as the
   reference scripts sample (batch 1: one class-conditional row and its CFG null row), both through
   the suite's own sampler, for ``dit`` and ``dmgd``.
3. Sinkhorn: the suite's batched Sinkhorn / POT's ``ot.sinkhorn`` (one call per class) on DMGD's
   guidance problem (classes x (IPC sources, K support points) in the latent dimension), with the
   largest plan difference.
4. k-means: the suite's class-batched torch k-means / scikit-learn's ``KMeans`` looped over classes
   (same k, init, restarts, iterations, tolerance), with the inertia ratio, at DMGD's and MGD³'s
   settings and the embedded profile's sizes, one restart and three (``benchmarks/kmeans_batched.py``).
5. Evaluation training: the suite's loop / a per-image ``DataLoader`` pipeline
   (``benchmarks/eval_loop.py``).
6. Model-batched evaluation: R = 5 repeats trained as one stacked model / the same 5 trained one
   after another in this process (``benchmarks/stacked_eval.py``), hard_label, ConvNet-3 at 16 px
   (goal > 1) and ResNet-AP-10 at 32 px (compute-bound on a CPU: no speed goal), with the largest
   top-1 difference between the two (at most one test image's worth).
7. The default profile end to end from a fresh copy of the working tree (``snakemake --cores 2``):
   wall time and peak memory (summed over the process tree); ``--skip-e2e`` leaves it out.

The GPU figures (on a CUDA device: ``--device auto`` finds it, ``cuda`` insists; ``--gpu-figures`` runs
them on a CPU at small sizes, tiny DiT and 32 px, to check their code) come first on a GPU, in this
order of priority:

a. The device's code paths that no CPU test reaches: the checkpoint's RNG state round trip with the
   device's generators (``evaluation/core/checkpoint.py``), and the evaluation loops (one at a time and
   stacked) under bf16 autocast and under ``torch.compile``.
b. Batching (2.) for ``dit`` and ``dmgd`` on a backbone of DiT-XL/2's size with random weights (timing
   does not depend on the weights) and DiT's SD VAE, at 256 px (goal ≥ 5x).
c. Achieved TFLOP/s of one DiT-XL/2 forward (``--flops-batch`` latents and their CFG null rows, bf16
   autocast; FLOPs counted by ``torch.utils.flop_counter``), as a fraction of the device's dense bf16
   peak (``BF16_DENSE_TFLOPS``).
d. Evaluation epochs/s of ResNet-AP-10 and ResNet-18 at 224 px: one model at a time vs model-batched
   (R = 5, per model) vs the per-image DataLoader pipeline (goal ≥ 3x).
e. bf16 autocast, then ``torch.compile``, against float32 eager: the DiT sampler (with the largest pixel
   difference) and the evaluation loops (with the largest top-1 difference).
f. Every method's images/s on the DiT-XL/2-sized backbone.

Every figure gives the peak memory of its sides (``torch.cuda.max_memory_allocated``; on a CPU the
process's peak resident set). ``--budget SECONDS`` keeps the whole run within that time: sizes shrink
(``Sizes.within``), and a figure whose estimated time (``Step.estimate``, corrected by the run's own
pace so far) no longer fits is skipped and listed as such; the figures run in order of priority (on
a GPU the GPU figures first, the default profile end to end last). A figure that fails is reported in
the table, the others still run, and the command exits with status 1.

Usage: python benchmarks/run.py [--quick] [--skip-e2e] [--out results/benchmarks.md] [--repeats 3]
       [--device auto|cpu|cuda] [--gpu-figures] [--budget SECONDS] [--backbone DIR] [--threads 2]
``--quick`` shrinks every size (seconds, for the smoke test; its figures are not the goals' sizes).
The GPU check is ``benchmarks/gpu_check.sh`` (``--device cuda --budget 480``, within 8 minutes).
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()   # before the imports below (~10 s), which --budget counts

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from anywhere
from benchmarks import eval_loop, kmeans_batched, stacked_eval
from benchmarks.dmgd_overhead import (
    context,
    default_backbone,
    distill_inputs,
    distill_runner,
)
from benchmarks.rows import Row, ms
from benchmarks.stacked_eval import Side
from benchmarks.timing import best_times, gigabytes, memory_name, peak_memory, reset_peak_memory
from evaluation.data.datasets import dataset_info
from evaluation.protocols.stacked_training import stacked_forward
from methods.diffusion.backbone import open_backbone
from methods.diffusion.ot import sinkhorn, sphere_cost
from methods.registry import get_method

CPU_BATCHING_GOAL, GPU_BATCHING_GOAL = 1.5, 5.0
E2E_MINUTES_GOAL, E2E_MEMORY_GOAL_GB = 5.0, 4.0   # issue #18: the default profile in 5 minutes
SKLEARN_TIME_GOAL, KMEANS_INERTIA_TOLERANCE = 0.5, 0.01
DATALOADER_GOAL = 3.0
FULL_GPU_SECONDS = 1800          # a budget under this shrinks the GPU figures (Sizes.within)
# NVIDIA's datasheet dense (no sparsity) bf16 tensor-core peaks, TFLOP/s; the first name that is a
# part of torch.cuda.get_device_name() wins, so the specific names come before the general ones.
BF16_DENSE_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0),
                     ("H100", 989.0), ("H800", 989.0), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0),
                     ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0))


@dataclass
class Sizes:
    """What each figure measures; ``--quick`` shrinks them all, :meth:`within` a budget the GPU ones."""
    ipc: int = 10            # per class, guided-method and batching figures
    steps: int = 50
    eval_epochs: int = 20
    # model-batched evaluation (figure 6): (network, px, IPC, epochs, test images, speed goal); ResNet-AP-10
    # at 32 px takes ~3 s per model and epoch of 20 images on 2 cores, compute-bound: no speed goal on a CPU
    # no CPU speed goal: on a CPU the stack's forward is each model's own kernels (mapped ones run slower)
    stacked: tuple = (("convnet-3", 16, 10, 2, 100, False), ("resnet_ap-10", 32, 2, 1, 20, False))
    models: int = 5          # R, the repeats trained as one stack
    stacked_test: int = 100  # test images of the GPU check's evaluation figures
    gpu_ipc: int = 10        # GPU figures
    gpu_steps: int = 50
    flops_batch: int = 32    # the TFLOP/s figure's DiT forward: this many latents and their CFG null rows
    device_eval_size: int = 224
    device_eval_ipc: int = 10
    gpu_eval_epochs: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(ipc=1, steps=4, eval_epochs=1, models=2, stacked_test=20,
                   stacked=(("convnet-3", 16, 1, 1, 20, False), ("resnet_ap-10", 16, 1, 1, 20, False)),
                   gpu_ipc=1, gpu_steps=4, flops_batch=2, device_eval_size=16, device_eval_ipc=1, gpu_eval_epochs=1)

    def within(self, budget: float | None) -> Sizes:
        """The GPU figures' sizes for a run of ``budget`` seconds: the GPU check's under FULL_GPU_SECONDS
        (DiT-XL/2 sampling costs 474 GFLOP per image and step, in float32 eager by default)."""
        if budget is None or budget >= FULL_GPU_SECONDS:
            return self
        return replace(self, gpu_ipc=min(self.gpu_ipc, 2), gpu_steps=min(self.gpu_steps, 10),
                       gpu_eval_epochs=min(self.gpu_eval_epochs, 3))

    def on_cpu(self) -> Sizes:
        """The GPU figures forced onto a CPU (``--gpu-figures``): the tiny DiT, 32 px evaluation."""
        return replace(self, device_eval_size=min(self.device_eval_size, 32), flops_batch=min(self.flops_batch, 4),
                       device_eval_ipc=min(self.device_eval_ipc, 2), gpu_eval_epochs=min(self.gpu_eval_epochs, 1))


@dataclass
class Step:
    """One figure: its name, its estimated seconds at the sizes in force (a guess that ``--budget``
    corrects by the run's own pace) and what makes its rows."""
    name: str
    estimate: float
    run: Callable[[], list[Row]]


# ----------------------------------------------------------------------------------------- figures

def method_rows(backbone_dir: Path, inputs, sizes: Sizes, repeats: int, device: str = "cpu") -> list[Row]:
    """Guided methods' per-image cost against ``dit``: same backbone, steps, batch (one round)."""
    classes = dataset_info("digits").num_classes
    methods = ("dit", "dmgd", "mgd3", "d4m")
    times = best_times({m: distill_runner(m, context(m, backbone_dir, inputs, sizes.ipc, sizes.steps, classes,
                                                      device)) for m in methods}, repeats, device)
    images = classes * sizes.ipc
    goals = {"dmgd": ("≤ 1.2", lambda r: r <= 1.2), "mgd3": ("", None),
             "d4m": ("", None)}   # D⁴M runs 35 of the 50 steps (strength 0.7), so below 1 by design
    rows = []
    for method in methods[1:]:
        ratio = times[method] / times["dit"]
        goal, check = goals[method]
        rows.append(Row(f"`{method}` / `dit` per-image cost ({device}, batch {classes}, {sizes.steps} steps, "
                        f"{images} images)", f"{ms(times[method] / images)}/image", f"{ms(times['dit'] / images)}/image",
                        f"{ratio:.2f}×", goal, check(ratio) if check else None))
    return rows


def batching_rows(backbone_dir: Path, inputs, sizes: Sizes, repeats: int, device: str = "cpu",
                  goal: float = CPU_BATCHING_GOAL, batch_size: int = 100) -> list[Row]:
    """Batched cross-class sampling (the profile's ``sampler.batch_size``) against batch 1."""
    images = dataset_info("digits").num_classes * sizes.ipc
    rows = []
    for method in ("dit", "dmgd"):
        runners = {batch: distill_runner(method, context(method, backbone_dir, inputs, sizes.ipc, sizes.steps,
                                                         batch, device)) for batch in (batch_size, 1)}
        peaks: dict[int, int] = {}
        times = best_times(runners, repeats, device, peaks)
        ratio = times[1] / times[batch_size]
        per_batch = min(batch_size, images) if method == "dit" else min(batch_size, images // sizes.ipc)
        rows.append(Row(f"`{method}` batched ({per_batch} images per forward) / one image at a time "
                        f"({device}, {images} images, {sizes.steps} steps; {memory_name(device)} "
                        f"{gigabytes(peaks[batch_size])} vs {gigabytes(peaks[1])}), throughput",
                        f"{images / times[batch_size]:.1f} images/s", f"{images / times[1]:.1f} images/s",
                        f"{ratio:.2f}×", f"≥ {goal:g}", ratio >= goal))
    return rows


def sinkhorn_row(latent_numel: int, sizes: Sizes, repeats: int, calls: int = 200) -> Row:
    """Suite's batched Sinkhorn / POT's ot.sinkhorn looped over classes, DMGD's guidance problem
    (default parameters: K = 10 support points, ε = 0.1, 5 iterations, float32)."""
    import ot

    from benchmarks.dmgd_overhead import method_params
    params = method_params("dmgd")
    classes, sources, support = dataset_info("digits").num_classes, max(sizes.ipc, 2), params["support_points"]
    epsilon, iters = params["sinkhorn_epsilon"], params["sinkhorn_iters"]
    gen = torch.Generator().manual_seed(0)
    cost = sphere_cost(torch.randn(classes, sources, latent_numel, generator=gen),
                       torch.randn(classes, support, latent_numel, generator=gen))
    a = torch.full((classes, sources), 1.0 / sources)
    b = torch.rand(classes, support, generator=gen) + 0.1
    b = b / b.sum(1, keepdim=True)
    a_np, b_np, cost_np = a.numpy(), b.numpy(), cost.numpy()

    def suite():
        return sinkhorn(a, b, cost, epsilon=epsilon, iters=iters, order="columns_first")

    def pot():
        with warnings.catch_warnings():   # "did not converge": a fixed iteration count, as the suite
            warnings.simplefilter("ignore", UserWarning)
            return [ot.sinkhorn(a_np[i], b_np[i], cost_np[i], epsilon, numItermax=iters, stopThr=0.0)
                    for i in range(classes)]

    difference = float((suite() - torch.from_numpy(np.stack(pot()))).abs().max())
    times = best_times({"suite": lambda: [suite() for _ in range(calls)],
                        "pot": lambda: [pot() for _ in range(calls)]}, repeats)
    ratio = times["suite"] / times["pot"]
    return Row(f"Sinkhorn / POT `ot.sinkhorn`, time ({classes} problems of {sources}×{support} points in "
               f"{latent_numel} dims, ε {epsilon:g}, {iters} iterations, float32; largest plan difference "
               f"{difference:.1e})", f"{ms(times['suite'] / calls)}/call", f"{ms(times['pot'] / calls)}/call",
               f"{ratio:.2f}×", "≤ 1, same plans", ratio <= 1.0 and difference < 1e-5)


def eval_row(sizes: Sizes, repeats: int, device: str = "cpu", size: int = 16, network: dict | None = None,
             workers: int = 0, goal: float = 3.0) -> Row:
    result = eval_loop.compare(size=size, ipc=10, epochs=sizes.eval_epochs, repeats=repeats, workers=workers,
                               device=device, network=network)
    network = network or eval_loop.NETWORK
    name = f"{network['arch']}-{network.get('depth', '')}".rstrip("-")
    epochs = result["epochs"]
    return Row(f"Evaluation training / per-image DataLoader pipeline, throughput ({device}, {name} at {size} px, "
               f"IPC 10, batch {result['batch_size']}, {workers} loader workers)",
               f"{result['images'] / result['suite_s']:.0f} images/s ({epochs / result['suite_s']:.2f} epochs/s)",
               f"{result['images'] / result['reference_s']:.0f} images/s ({epochs / result['reference_s']:.2f} epochs/s)",
               f"{result['ratio']:.2f}×", f"≥ {goal:g}", result["ratio"] >= goal)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def flop_rate(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e12:.2f} TFLOP/s" if flops_per_s >= 1e11 else f"{flops_per_s / 1e9:.2f} GFLOP/s"


def network_name(network: str) -> str:
    arch, kwargs = stacked_eval.NETWORKS[network]
    return f"{arch}-{kwargs['depth']}" + (f" (width {kwargs['width']})" if network == "convnet-1" else "")


def throughput(m: stacked_eval.Measurement, side: str) -> str:
    return f"{m.images_per_s(side):.0f} images/s ({m.epochs_per_s(side):.2f} epochs/s per model)"


def stacked_rows(sizes: Sizes, repeats: int, device: str = "cpu") -> list[Row]:
    """Figure 6: R stacked models / the same R one after another, with the largest top-1 difference
    (met: faster where a speed goal is set, and no evaluation differs by more than one test image)."""
    rows = []
    for network, size, ipc, epochs, test, speed_goal in sizes.stacked:
        m = stacked_eval.measure({"stacked": Side(True), "vmap": Side(True, forward="vmap"), "sequential": Side(False)},
                                 network, size, ipc, epochs, repeats, sizes.models, device, test_images=test)
        ratio, difference = m.ratio("stacked", "sequential"), m.top1_difference("stacked", "sequential")
        forward = stacked_forward("auto", device)
        print(f"[benchmarks] {network}: largest top-1 difference stacked vs one after another {difference:.2f} points",
              file=sys.stderr, flush=True)
        rows.append(Row(f"Model-batched evaluation: {sizes.models} stacked models / the same {sizes.models} one after "
                        f"another in one process, throughput ({device}, {network_name(network)} at {size} px, "
                        f"hard_label, IPC {ipc}, batch {m.batch_size}, {count(epochs, 'epoch')} and one evaluation on "
                        f"{m.test_images} test images per model; {m.stacked['stacked']} models in one "
                        f"stack, forward `{forward}` (`vmap` {m.ratio('vmap', 'sequential'):.2f}×, largest top-1 "
                        f"difference {m.top1_difference('vmap', 'sequential'):.2f}); largest top-1 difference "
                        f"{difference:.2f} points; {memory_name(device)} "
                        f"{gigabytes(m.peaks['stacked'])} vs {gigabytes(m.peaks['sequential'])})",
                        throughput(m, "stacked"), throughput(m, "sequential"),
                        f"{ratio:.2f}×", "> 1, same top-1" if speed_goal else "same top-1",
                        (ratio > 1 or not speed_goal) and difference <= 100 / m.test_images))
    return rows


# ------------------------------------------------------------------------------------- end to end

def working_tree_copy(destination: Path) -> Path:
    """The repository's tracked and not-ignored files, as a fresh clone of the working tree would hold."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants."""
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def e2e_rows(work: Path, cores: int = 2) -> list[Row]:
    """The default profile from a fresh copy: wall time and peak memory of the whole process tree."""
    clone = working_tree_copy(work / "clone")
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", str(cores)], cwd=clone, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log = proc.communicate()[0].decode(errors="replace")
    seconds = time.perf_counter() - started
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"the default profile failed (exit {proc.returncode}); its log ends:\n{log[-2000:]}")
    jobs = sum(1 for line in log.splitlines() if line.strip().startswith(("rule ", "localrule ")))
    gigabytes = peak[0] / 2 ** 30
    return [Row(f"Default profile end to end, wall time (`snakemake --cores {cores}`, fresh copy, {jobs} jobs)",
                f"{seconds / 60:.1f} min", "", "", f"≤ {E2E_MINUTES_GOAL:g} min", seconds / 60 <= E2E_MINUTES_GOAL),
            Row("Default profile end to end, peak memory (resident, summed over all processes)",
                f"{gigabytes:.2f} GB", "", "", f"≤ {E2E_MEMORY_GOAL_GB:g} GB", gigabytes <= E2E_MEMORY_GOAL_GB)]


# ------------------------------------------------------------------------------------------- GPU

def dit_xl_backbone(directory: Path) -> Path:
    """A backbone of DiT-XL/2-256's and its SD VAE's architectures with random weights."""
    from diffusers import AutoencoderKL, DiTTransformer2DModel

    from benchmarks.paper_cost import DIT_XL_2
    from methods.diffusion.backbone import Backbone, dit_scheduler
    from methods.diffusion.official_dit import apply_numerics
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                        layers_per_block=2, latent_channels=4, sample_size=256)
    dit = apply_numerics(DiTTransformer2DModel(**DIT_XL_2), "official", fresh=True)   # the default numerics
    Backbone(dit, vae, dit_scheduler()).save(directory / "dit-xl-2")
    return directory / "dit-xl-2"


def bf16_peak_tflops(device: str) -> float | None:
    """The device's dense bf16 peak (BF16_DENSE_TFLOPS), None when unknown or not a GPU."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in BF16_DENSE_TFLOPS if part in name), None)


def device_label(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU ({platform.machine()})"


def largest_image_difference(a, b) -> int:
    return int((a.images.int() - b.images.int()).abs().max())


def device_paths_row(work: Path, device: str) -> Row:
    """Figure a: the checkpoint's RNG state round trip with the device's generators, and the evaluation
    loops (one at a time and 2 stacked, on the smallest ConvNet) under bf16 autocast and under
    ``torch.compile``, each once."""
    from evaluation.core.checkpoint import Checkpoint, restore_rng, rng_state

    started = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(0)
    torch.randn(1, device=device)   # initialises the device's default generator, which rng_state then saves

    def draws():
        return [torch.randn(8, device=device), torch.randn(8, device=device, generator=generator), torch.randn(8),
                torch.from_numpy(np.random.rand(8))]
    checkpoint = Checkpoint(work / "rng.ckpt", "rng round trip", interval_s=0)
    checkpoint.save({"rng": rng_state(generator)}, at="before the draws")   # through the file, as a resume reads it
    before = draws()
    with contextlib.redirect_stdout(sys.stderr):   # its "resumed from" line, off the table on stdout
        restore_rng(checkpoint.load()["rng"], generator)
    after = draws()
    if device.startswith("cuda") and rng_state()["cuda"] is None:
        raise AssertionError("rng_state saved no CUDA generator state although CUDA is initialised")
    if not all(torch.equal(a, b) for a, b in zip(before, after)):
        raise AssertionError(f"restore_rng did not restore the random streams on {device}")
    options = {"bf16": {"autocast_bf16": True}, "compile": {"compile": True}}
    sides = {f"{name} {kind}": Side(stack, option) for name, option in options.items()
             for kind, stack in (("single", False), ("stacked", True))}
    m = stacked_eval.measure(sides, "convnet-1", 16, ipc=1, epochs=1, repeats=1, models=2, device=device,
                             test_images=20, data_dir=work / "digits16")
    unstacked = [name for name in sides if sides[name].stack and m.stacked[name] == 1]
    if unstacked:
        raise AssertionError(f"{', '.join(unstacked)} trained one at a time, not as one stack")
    return Row(f"Device code paths on {device_label(device)}: checkpoint RNG state round trip through a checkpoint "
               f"file (device generator, default generators, numpy) restores every stream; hard_label training under "
               f"bf16 autocast and under `torch.compile`, one at a time and 2 stacked ({network_name('convnet-1')} "
               f"at 16 px)", f"{time.perf_counter() - started:.1f} s", "", "", "all run, streams restored", True)


def batching_gpu_rows(xl, sizes: Sizes, repeats: int, device: str) -> list[Row]:
    """Figure b: batching (figure 2) on the DiT-XL/2-sized backbone."""
    backbone_dir, inputs = xl()
    return batching_rows(backbone_dir, inputs, Sizes(ipc=sizes.gpu_ipc, steps=sizes.gpu_steps), repeats, device,
                         GPU_BATCHING_GOAL)


def dit_flops_row(backbone_dir: Path, batch: int, repeats: int, device: str) -> Row:
    """Figure c: achieved TFLOP/s of one DiT forward on ``batch`` latents and their CFG null rows (the best
    of ``repeats`` rounds of 5 forwards; of one on a CPU, where bf16 is slow)."""
    from torch.utils.flop_counter import FlopCounterMode

    calls = 5 if device.startswith("cuda") else 1
    backbone = open_backbone(backbone_dir, device)
    dit = backbone.transformer.eval()
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(2 * batch, *backbone.latent_shape, generator=gen).to(device)
    labels = torch.cat([torch.randint(0, backbone.num_classes, (batch,), generator=gen),
                        torch.full((batch,), backbone.null_label)]).to(device)
    timestep = torch.full((2 * batch,), 500, device=device, dtype=torch.long)

    def forward(bf16: bool):
        with torch.inference_mode(), torch.autocast(latents.device.type, dtype=torch.bfloat16, enabled=bf16):
            return dit(latents, timestep=timestep, class_labels=labels).sample
    with FlopCounterMode(display=False) as counter:
        forward(True)
    flops = counter.get_total_flops()
    forward(False)   # warm-up of both, outside the timing
    peaks: dict[str, int] = {}
    times = best_times({"bf16": lambda: [forward(True) for _ in range(calls)],
                        "float32": lambda: [forward(False) for _ in range(calls)]}, repeats, device, peaks)
    achieved = {name: flops / (seconds / calls) for name, seconds in times.items()}
    peak = bf16_peak_tflops(device)
    shape = "×".join(map(str, backbone.latent_shape))
    name = "DiT-XL/2" if backbone.transformer.config.num_layers == 28 else "tiny DiT"
    total = f"{flops / 1e12:.2f} TFLOP" if flops >= 1e11 else f"{flops / 1e9:.3f} GFLOP"
    return Row(f"{name} forward, achieved TFLOP/s under bf16 autocast / the device's dense bf16 peak "
               f"({device_label(device)}; {batch} latents {shape} + their CFG null rows, {total} per forward counted "
               f"by `FlopCounterMode`, {ms(times['bf16'] / calls)} per forward; float32 eager "
               f"{flop_rate(achieved['float32'])}; {memory_name(device)} {gigabytes(peaks['bf16'])})",
               flop_rate(achieved["bf16"]),
               "n/a (no GPU)" if not device.startswith("cuda") else f"{peak:g} TFLOP/s" if peak else "unknown peak",
               f"{100 * achieved['bf16'] / 1e12 / peak:.1f}% of peak" if peak else "n/a", "")


def device_eval_rows(network: str, sizes: Sizes, repeats: int, device: str, data_dir: Path) -> list[Row]:
    """Figure d: one model at a time vs model-batched (R) vs the per-image DataLoader pipeline."""
    workers = 4 if device.startswith("cuda") else 0
    size, epochs = sizes.device_eval_size, sizes.gpu_eval_epochs
    m = stacked_eval.measure({"stacked": Side(True), "single": Side(False), "dataloader": Side(None)}, network, size,
                             sizes.device_eval_ipc, epochs, repeats, sizes.models, device, workers,
                             test_images=sizes.stacked_test, data_dir=data_dir)
    flops = stacked_eval.training_flops(network, size, device)
    setting = (f"{device}, {network_name(network)} at {size} px, hard_label, IPC {sizes.device_eval_ipc}, batch "
               f"{m.batch_size}, {count(epochs, 'epoch')}")
    memory = memory_name(device)

    def epochs_s(side):
        return f"{m.epochs_per_s(side):.2f} epochs/s ({m.images_per_s(side):.0f} images/s)"
    stacked, single, loader = (m.ratio("stacked", "single"), m.ratio("single", "dataloader"),
                               m.ratio("stacked", "dataloader"))
    return [Row(f"Evaluation, model-batched ({m.stacked['stacked']} stacked) / one model at a time, per-model "
                f"throughput ({setting}; training {flop_rate(m.flops_per_s('stacked', flops))} vs "
                f"{flop_rate(m.flops_per_s('single', flops))}; largest top-1 difference "
                f"{m.top1_difference('stacked', 'single'):.2f} points; {memory} "
                f"{gigabytes(m.peaks['stacked'])} vs {gigabytes(m.peaks['single'])})",
                epochs_s("stacked"), epochs_s("single"), f"{stacked:.2f}×", "> 1", stacked > 1),
            Row(f"Evaluation, the suite's loop one model at a time / per-image DataLoader pipeline, throughput "
                f"({setting}, {workers} loader workers; model-batched / DataLoader {loader:.2f}×; {memory} "
                f"{gigabytes(m.peaks['single'])} vs {gigabytes(m.peaks['dataloader'])})",
                epochs_s("single"), epochs_s("dataloader"), f"{single:.2f}×", f"≥ {DATALOADER_GOAL:g}",
                single >= DATALOADER_GOAL)]


def sampler_option_rows(backbone_dir: Path, inputs, sizes: Sizes, repeats: int, device: str, option: str) -> list[Row]:
    """Figure e, sampler: ``dit`` with ``performance.<option>`` against float32 eager, with the largest
    pixel difference the option causes."""
    images = dataset_info("digits").num_classes * sizes.gpu_ipc
    contexts = {name: context("dit", backbone_dir, inputs, sizes.gpu_ipc, sizes.gpu_steps, 100, device, sampler)
                for name, sampler in (("plain", None), ("fast", {option: True}))}
    results = {}

    def runner(name):
        def run():
            results[name] = get_method("dit").distill(contexts[name])
        return run
    runners = {name: runner(name) for name in contexts}
    if option == "compile":   # compiles outside the timing
        runners["fast"]()
    peaks: dict[str, int] = {}
    times = best_times(runners, repeats, device, peaks)
    plain, fast = results["plain"], results["fast"]
    return [Row(f"`dit` with `performance.{option}` / float32 eager, throughput ({device}, {images} images, "
                f"{sizes.gpu_steps} steps, batch 100; largest pixel difference {largest_image_difference(plain, fast)} "
                f"of 255; {memory_name(device)} {gigabytes(peaks['fast'])} vs {gigabytes(peaks['plain'])})",
                f"{images / times['fast']:.1f} images/s", f"{images / times['plain']:.1f} images/s",
                f"{times['plain'] / times['fast']:.2f}×", "")]


def eval_option_rows(network: str, size: int, ipc: int, epochs: int, models: int, repeats: int, device: str,
                     option: str, data_dir: Path) -> list[Row]:
    """Figure e, evaluation: both loops (one at a time, stacked) with protocol key ``option`` against
    float32 eager; under ``compile`` every side runs once untimed first (it compiles there)."""
    sides = {f"{name} {kind}": Side(stack, {option: True} if name == "fast" else {})
             for kind, stack in (("single", False), ("stacked", True)) for name in ("plain", "fast")}
    m = stacked_eval.measure(sides, network, size, ipc, epochs, repeats, models, device, test_images=20,
                             warm_up=option == "compile", data_dir=data_dir)
    rows = []
    for kind in ("single", "stacked"):
        fast, plain = f"fast {kind}", f"plain {kind}"
        loop = f"{m.stacked[fast]} stacked" if kind == "stacked" else "one model at a time"
        rows.append(Row(f"Evaluation with `{option}` / float32 eager, {loop}, per-model throughput ({device}, "
                        f"{network_name(network)} at {size} px, IPC {ipc}, {count(epochs, 'epoch')}; largest top-1 "
                        f"difference {m.top1_difference(fast, plain):.2f} points; {memory_name(device)} "
                        f"{gigabytes(m.peaks[fast])} vs {gigabytes(m.peaks[plain])})",
                        f"{m.epochs_per_s(fast):.2f} epochs/s", f"{m.epochs_per_s(plain):.2f} epochs/s",
                        f"{m.ratio(fast, plain):.2f}×", ""))
    return rows


def method_throughput_rows(xl, sizes: Sizes, repeats: int, device: str) -> list[Row]:
    """Figure f: every method's images/s on the DiT-XL/2-sized backbone."""
    backbone_dir, inputs = xl()
    images = dataset_info("digits").num_classes * sizes.gpu_ipc
    rows = []
    for method in ("dit", "dmgd", "mgd3", "d4m"):   # minimax samples as dit, on its fine-tuned weights
        batch = 100
        ctx = context(method, backbone_dir, inputs, sizes.gpu_ipc, sizes.gpu_steps, batch, device)
        run = distill_runner(method, ctx)
        peaks: dict[str, int] = {}
        seconds = best_times({method: run}, repeats, device, peaks)[method]
        rows.append(Row(f"`{method}` throughput ({device}, DiT-XL/2 size, 256 px, sampler batch {batch}, "
                        f"{sizes.gpu_steps} steps, {images} images; {memory_name(device)} {gigabytes(peaks[method])})",
                        f"{images / seconds:.1f} images/s", "", "", ""))
    return rows


def gpu_steps(work: Path, sizes: Sizes, repeats: int, device: str, tiny) -> list[Step]:
    """The GPU figures in order of priority, on ``device``; on a CPU (``--gpu-figures``) with the tiny
    backbone ``tiny()`` and without the figures a CPU run already has (batching, method throughput) or
    that only time a cold compile (the sampler's: 42 s for the tiny DiT on 2 cores; its path is
    tests/test_performance.py's)."""
    on_gpu = device.startswith("cuda")
    work.mkdir(parents=True, exist_ok=True)

    @cache
    def xl():
        backbone_dir = dit_xl_backbone(work)
        (work / "xl").mkdir(exist_ok=True)
        return backbone_dir, distill_inputs(work / "xl", backbone_dir, device)
    backbone = xl if on_gpu else tiny

    def setup() -> list[Row]:   # its own step, so that the budget's pace does not charge it to a figure
        xl()
        return []
    digits = work / f"digits{sizes.device_eval_size}"

    def eval_options(option: str) -> list[Row]:
        if on_gpu:
            return eval_option_rows("resnet-18", sizes.device_eval_size, sizes.device_eval_ipc, sizes.gpu_eval_epochs,
                                    sizes.models, repeats, device, option, digits)
        # on a CPU figure a's network and sizes, whose compiled graphs it reuses (a cold compile of a
        # larger network takes minutes on 2 cores)
        return eval_option_rows("convnet-1", 16, 1, 1, 2, repeats, device, option, work / "digits16")
    steps = [Step("device code paths (RNG state, bf16, compile)", 45, lambda: [device_paths_row(work, device)])]
    if on_gpu:
        steps += [Step("DiT-XL/2-sized backbone and its latents", 60, setup),
                  Step("batching (GPU)", 60, lambda: batching_gpu_rows(xl, sizes, repeats, device))]
    steps += [Step("DiT forward TFLOP/s", 15,
                   lambda: [dit_flops_row(backbone()[0], sizes.flops_batch, repeats, device)])]
    steps += [Step(f"evaluation at {sizes.device_eval_size} px, {network}", 30,
                   lambda network=network: device_eval_rows(network, sizes, repeats, device, digits))
              for network in ("resnet_ap-10", "resnet-18")]
    steps += [Step("sampler bf16", 30,
                   lambda: sampler_option_rows(*backbone(), sizes, repeats, device, "autocast_bf16")),
              Step("evaluation bf16", 30, lambda: eval_options("autocast_bf16")),
              Step("evaluation compile", 150, lambda: eval_options("compile"))]
    if on_gpu:
        steps += [Step("sampler compile", 150, lambda: sampler_option_rows(*xl(), sizes, repeats, device, "compile")),
                  Step("method throughput (GPU)", 60, lambda: method_throughput_rows(xl, sizes, repeats, device))]
    return steps


# ------------------------------------------------------------------------------------------ report

def cpu_steps(sizes: Sizes, repeats: int, tiny, quick: bool) -> list[Step]:
    """Figures 1-6 on the CPU, with the tiny backbone ``tiny()`` (estimates at the default sizes)."""
    def latent_numel() -> int:
        return int(np.prod(open_backbone(tiny()[0]).latent_shape))
    return [Step("guided methods", 120, lambda: method_rows(*tiny(), sizes, repeats)),
            Step("batching", 200, lambda: batching_rows(*tiny(), sizes, repeats)),
            Step("sinkhorn", 15, lambda: [sinkhorn_row(latent_numel(), sizes, repeats)]),
            Step("k-means", 60, lambda: kmeans_batched.kmeans_rows(quick, repeats)),
            Step("evaluation", 60, lambda: [eval_row(sizes, repeats)]),
            Step("model-batched evaluation", 240, lambda: stacked_rows(sizes, repeats))]


def run_steps(steps: list[Step], budget: float | None, started: float,
              report: Callable[[list[Row], list[str], list[str]], None]) -> tuple[list[Row], list[str], list[str]]:
    """Run ``steps`` in order: the rows, the skipped figures and the failed ones. Under ``budget`` a step
    is skipped when its estimate, scaled by the run's pace so far (seconds spent / estimated, at least
    1/2), would end past the budget; ``report`` is called after every step with what is there."""
    rows, skipped, failed = [], [], []
    spent = estimated = 0.0
    for step in steps:
        pace = max(spent / estimated, 0.5) if estimated else 1.0   # never trust the estimates by more than 2x
        if budget is not None and time.perf_counter() - started + pace * step.estimate > budget:
            print(f"[benchmarks] {step.name}: skipped (it would take about {pace * step.estimate:.0f} s, "
                  f"{budget - (time.perf_counter() - started):.0f} s of --budget {budget:g} s are left)",
                  file=sys.stderr, flush=True)
            skipped.append(step.name)
            continue
        print(f"[benchmarks] {step.name} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            rows += step.run()
        except Exception as error:   # the GPU check runs unattended: one figure's failure keeps the others
            traceback.print_exc()
            failed.append(f"{step.name} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
        spent += time.perf_counter() - begun
        estimated += step.estimate
        print(f"[benchmarks] {step.name}: {time.perf_counter() - begun:.1f} s (estimate {step.estimate:g} s)",
              file=sys.stderr, flush=True)
        report(rows, skipped, failed)
    return rows, skipped, failed


def command_line(args) -> str:
    flags = [f"--device {args.device}"] + [f"--{name.replace('_', '-')}"
                                           for name in ("quick", "skip_e2e", "gpu_figures") if getattr(args, name)]
    flags += [f"--{name} {getattr(args, name):g}" for name in ("ipc", "steps", "budget") if getattr(args, name)]
    return f"`python benchmarks/run.py {' '.join(flags)}`"


def markdown(rows: list[Row], args, seconds: float, skipped: list[str], failed: list[str],
             partial: bool = False) -> str:
    header = ["Figure", "Suite", "Reference", "Ratio", "Goal", ""]
    device = f"; device {torch.cuda.get_device_name()}" if args.device == "cuda" else "; no GPU"
    setting = (f"{command_line(args)} on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"{torch.get_num_threads()} torch threads, torch {torch.__version__}{device}; each ratio is the suite "
               f"against its reference measured side by side in this run, interleaved, best of {args.repeats} "
               f"rounds; {seconds / 60:.1f} min in all.")
    lines = ["# Benchmarks", "", setting, "", "| " + " | ".join(header) + " |", "|---|---:|---:|---:|---|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    if partial:
        lines += ["", "**In progress**: the run has not finished; the figures above are those measured so far."]
    if failed:
        lines += ["", f"**Failed** (see the run's log): {'; '.join(failed)}."]
    if skipped:
        lines += ["", f"Skipped to stay within `--budget {args.budget:g}` s: {', '.join(skipped)}."]
    if args.skip_e2e:
        lines += ["", "The default profile end to end was skipped (`--skip-e2e`)."]
    if args.device != "cuda":
        lines += ["", "No CUDA device: " + (
            "the GPU figures ran on the CPU at small sizes (`--gpu-figures`: tiny DiT, evaluation at 32 px, 16 with "
            "`--quick`) to check their code; they are no GPU measurement, and the sampler's `torch.compile` row is "
            "left out on a CPU."
            if args.gpu_figures else "the GPU figures were not measured (the same command adds them on a GPU).")]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="default results/benchmarks.md, results/benchmarks-gpu.md with the GPU figures on a GPU")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the default profile end to end")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds (default 3; 2 under a --budget below 30 min; 1 with --quick)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: add the GPU figures when CUDA is available")
    parser.add_argument("--gpu-figures", action="store_true",
                        help="on a CPU, run the GPU figures too at small sizes (checks their code)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds the whole run may take: smaller GPU sizes, and the figures that would "
                             "not fit are skipped")
    parser.add_argument("--backbone", type=Path, default=None,
                        help="backbone of the CPU figures (default: an untrained one of the default architecture)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the CPU figures")
    parser.add_argument("--ipc", type=int, default=None, help="override the IPC of the sampling figures (default 10)")
    parser.add_argument("--steps", type=int, default=None, help="override the sampler steps (default 50)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible; use --device auto or cpu")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = args.device == "cuda"
    out = args.out or ROOT / "results" / ("benchmarks-gpu.md" if on_gpu else "benchmarks.md")
    shrunk = args.budget is not None and args.budget < FULL_GPU_SECONDS
    args.repeats = args.repeats or (1 if args.quick else 2 if shrunk else 3)
    sizes = (Sizes.quick() if args.quick else Sizes()).within(args.budget)
    sizes.ipc = args.ipc or sizes.ipc
    sizes.steps = args.steps or sizes.steps
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        @cache
        def tiny():
            backbone_dir = args.backbone or default_backbone(work / "backbone")
            return backbone_dir, distill_inputs(work, backbone_dir)
        steps = cpu_steps(sizes, args.repeats, tiny, args.quick)
        if on_gpu:
            steps = gpu_steps(work / "gpu", sizes, args.repeats, "cuda", tiny) + steps
        elif args.gpu_figures:
            steps += gpu_steps(work / "gpu", sizes.on_cpu(), args.repeats, "cpu", tiny)
        if not args.skip_e2e:
            steps.append(Step("end to end", 600, lambda: e2e_rows(work / "e2e")))

        def report(rows, skipped, failed):
            write(out, markdown(rows, args, time.perf_counter() - STARTED, skipped, failed, partial=True))
        rows, skipped, failed = run_steps(steps, args.budget, STARTED, report)
    text = markdown(rows, args, time.perf_counter() - STARTED, skipped, failed)
    write(out, text)
    print(text)
    if failed:
        raise SystemExit(f"{len(failed)} figure(s) failed: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
