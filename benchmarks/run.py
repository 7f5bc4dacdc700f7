"""Every performance figure of the suite in one command, each measured side by side in one run.

Writes ``results/benchmarks.md`` (``--out``) and prints it. Each figure is a ratio of the suite to a
reference timed in the same process, interleaved, best of ``--repeats`` rounds (a shared machine's
slow spells hit both sides alike); absolute times are given for orientation only.

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
4. k-means: the suite's torch k-means / scikit-learn's ``KMeans`` (same k, init, iterations,
   tolerance) on every class's latents of the embedded data, with the inertia ratio, at DMGD's one
   restart and at three (the suite runs restarts together, scikit-learn one after another).
5. Evaluation training: the suite's loop / a per-image ``DataLoader`` pipeline
   (``benchmarks/eval_loop.py``).
6. The default profile end to end from a fresh copy of the working tree (``snakemake --cores 2``):
   wall time and peak memory (summed over the process tree); ``--skip-e2e`` leaves it out.

On a CUDA machine (``--device auto`` finds it, ``cuda`` insists) it adds the GPU figures: images/s of
every method on a backbone of DiT-XL/2's size with random weights (timing does not depend on the
weights) and DiT's SD VAE, batched against one-at-a-time sampling, evaluation training epochs/s at
224 px (ResNet-18) against the DataLoader pipeline, the peak GPU memory of each, and the opt-in
``performance`` options (bf16 autocast, ``torch.compile``) against float32 eager with the largest
image difference they cause.

Usage: python benchmarks/run.py [--quick] [--skip-e2e] [--out results/benchmarks.md] [--repeats 3]
       [--device auto|cpu|cuda] [--backbone DIR] [--threads 2]
``--quick`` shrinks every size (seconds, for the smoke test; its figures are not the goals' sizes).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from anywhere
from benchmarks import eval_loop
from benchmarks.dmgd_overhead import (
    context,
    default_backbone,
    distill_inputs,
    distill_runner,
)
from benchmarks.timing import best_times
from evaluation.data.datasets import dataset_info
from methods.diffusion.backbone import open_backbone
from methods.diffusion.kmeans import kmeans
from methods.diffusion.ot import sinkhorn, sphere_cost
from methods.registry import get_method

CPU_BATCHING_GOAL, GPU_BATCHING_GOAL = 1.5, 5.0
E2E_MINUTES_GOAL, E2E_MEMORY_GOAL_GB = 10.0, 4.0
SKLEARN_TIME_GOAL, KMEANS_INERTIA_TOLERANCE = 0.5, 0.01


@dataclass
class Row:
    figure: str
    suite: str
    reference: str
    ratio: str
    goal: str
    met: bool | None = None   # None: no goal

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else ("met" if self.met else "**not met**")
        return [self.figure, self.suite, self.reference, self.ratio, self.goal, verdict]


@dataclass
class Sizes:
    """What each figure measures; ``--quick`` shrinks them all."""
    ipc: int = 10            # per class, guided-method and batching figures
    steps: int = 50
    eval_epochs: int = 20
    gpu_ipc: int = 10
    gpu_eval_epochs: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(ipc=1, steps=4, eval_epochs=1, gpu_ipc=1, gpu_eval_epochs=1)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


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
        times = best_times(runners, repeats, device)
        ratio = times[1] / times[batch_size]
        per_batch = min(batch_size, images) if method == "dit" else min(batch_size, images // sizes.ipc)
        rows.append(Row(f"`{method}` batched ({per_batch} images per forward) / one image at a time "
                        f"({device}, {images} images, {sizes.steps} steps), throughput",
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


def kmeans_row(latents_path: Path, restarts: int, repeats: int) -> Row:
    """Suite's k-means / scikit-learn's KMeans on every class's latents of the embedded data: same
    k (DMGD's support points), k-means++ init, restarts, iterations and tolerance."""
    from sklearn.cluster import KMeans

    from benchmarks.dmgd_overhead import method_params
    params = method_params("dmgd")
    k, iters, tol = params["support_points"], params["kmeans_iters"], 1e-6   # the suite's tolerance
    real = torch.load(latents_path)
    classes = [real["mean"][real["labels"] == c].flatten(1) for c in range(dataset_info("digits").num_classes)]
    arrays = [points.double().numpy() for points in classes]
    inertia = {}

    def suite():
        inertia["suite"] = sum(kmeans(points.double(), k, generator=torch.Generator().manual_seed(c), iters=iters,
                                      restarts=restarts, tol=tol).inertia
                               for c, points in enumerate(classes))

    def sklearn():
        inertia["sklearn"] = sum(KMeans(n_clusters=k, n_init=restarts, max_iter=iters, tol=tol,
                                        random_state=c).fit(points).inertia_ for c, points in enumerate(arrays))

    times = best_times({"suite": suite, "sklearn": sklearn}, repeats)
    ratio = times["suite"] / times["sklearn"]
    relative = inertia["suite"] / inertia["sklearn"] - 1.0
    return Row(f"k-means / scikit-learn `KMeans`, time ({len(classes)} classes of {len(classes[0])}×"
               f"{classes[0].shape[1]} latents, k {k}, k-means++, {restarts} restart{'s' * (restarts > 1)}, float64; "
               f"inertia {100 * relative:+.2f}%)", f"{ms(times['suite'])}", f"{ms(times['sklearn'])}",
               f"{ratio:.2f}×", f"≤ {SKLEARN_TIME_GOAL:g}, inertia within 1%",
               ratio <= SKLEARN_TIME_GOAL and relative <= KMEANS_INERTIA_TOLERANCE)


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


def peak_gpu_gb(run) -> float:
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2 ** 30


def largest_image_difference(a, b) -> int:
    return int((a.images.int() - b.images.int()).abs().max())


def gpu_rows(work: Path, sizes: Sizes, repeats: int, device: str = "cuda",
             options: tuple[str, ...] = ("autocast_bf16", "compile")) -> list[Row]:
    """The GPU figures on DiT-XL/2-sized random weights (module docstring)."""
    backbone_dir = dit_xl_backbone(work)
    (work / "xl").mkdir(parents=True, exist_ok=True)
    inputs = distill_inputs(work / "xl", backbone_dir, device)
    classes = dataset_info("digits").num_classes
    images = classes * sizes.gpu_ipc
    gpu_sizes = Sizes(ipc=sizes.gpu_ipc, steps=sizes.steps)
    rows = []
    for method in ("dit", "dmgd", "mgd3", "d4m"):   # minimax samples as dit, on its fine-tuned weights
        batch = 100
        run = distill_runner(method, context(method, backbone_dir, inputs, sizes.gpu_ipc, sizes.steps, batch, device))
        seconds = best_times({method: run}, repeats, device)[method]
        rows.append(Row(f"GPU `{method}` throughput (DiT-XL/2 size, 256 px, sampler batch {batch}, {sizes.steps} steps, "
                        f"{images} images; peak GPU memory {peak_gpu_gb(run):.1f} GB)",
                        f"{images / seconds:.1f} images/s", "", "", ""))
    rows += batching_rows(backbone_dir, inputs, gpu_sizes, repeats, device, GPU_BATCHING_GOAL)
    resnet = {"arch": "resnet", "depth": 18, "norm": "batch"}
    torch.cuda.reset_peak_memory_stats()
    row = eval_row(Sizes(eval_epochs=sizes.gpu_eval_epochs), repeats, device, size=224, network=resnet, workers=4)
    row.figure += f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GB"
    rows.append(row)
    # opt-in performance options against float32 eager: speed and the largest image difference
    base_ctx = context("dit", backbone_dir, inputs, sizes.gpu_ipc, sizes.steps, 100, device)
    for option in options:
        ctx = context("dit", backbone_dir, inputs, sizes.gpu_ipc, sizes.steps, 100, device, {option: True})
        plain, fast = get_method("dit").distill(base_ctx), get_method("dit").distill(ctx)   # compiles here
        times = best_times({"plain": distill_runner("dit", base_ctx), "fast": distill_runner("dit", ctx)},
                           repeats, device)
        rows.append(Row(f"GPU `dit` with `performance.{option}` / float32 eager, throughput (largest pixel "
                        f"difference {largest_image_difference(plain, fast)} of 255)",
                        f"{images / times['fast']:.1f} images/s", f"{images / times['plain']:.1f} images/s",
                        f"{times['plain'] / times['fast']:.2f}×", ""))
    return rows


# ------------------------------------------------------------------------------------------ report

def markdown(rows: list[Row], args, sizes: Sizes, seconds: float) -> str:
    header = ["Figure", "Suite", "Reference", "Ratio", "Goal", ""]
    options = "".join(f" --{name} {getattr(args, name)}" for name in ("ipc", "steps") if getattr(args, name))
    setting = (f"`python benchmarks/run.py{' --quick' if args.quick else ''}{' --skip-e2e' if args.skip_e2e else ''}"
               f"{options}` "
               f"on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
               f"{', ' + torch.cuda.get_device_name() if args.device == 'cuda' else ''}; each ratio is the suite "
               f"against its reference measured side by side in this run, interleaved, best of {args.repeats} "
               f"rounds; {seconds / 60:.1f} min in all.")
    lines = ["# Benchmarks", "", setting, "", "| " + " | ".join(header) + " |", "|---|---:|---:|---:|---|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    if args.skip_e2e:
        lines += ["", "The default profile end to end was skipped (`--skip-e2e`)."]
    if args.device != "cuda":
        lines += ["", "No CUDA device: the GPU figures were not measured (the same command adds them on a GPU)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the default profile end to end")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 3, --quick 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: add the GPU figures when CUDA is available")
    parser.add_argument("--backbone", type=Path, default=None,
                        help="backbone of the CPU figures (default: an untrained one of the default architecture)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the CPU figures")
    parser.add_argument("--ipc", type=int, default=None, help="override the IPC of the sampling figures (default 10)")
    parser.add_argument("--steps", type=int, default=None, help="override the sampler steps (default 50)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible; use --device auto or cpu")
    args.device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    args.repeats = args.repeats or (1 if args.quick else 3)
    sizes = Sizes.quick() if args.quick else Sizes()
    sizes.ipc = args.ipc or sizes.ipc
    sizes.steps = args.steps or sizes.steps
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backbone_dir = args.backbone or default_backbone(work / "backbone")
        inputs = distill_inputs(work, backbone_dir)
        latent_numel = int(np.prod(open_backbone(backbone_dir).latent_shape))
        steps = [("guided methods", lambda: method_rows(backbone_dir, inputs, sizes, args.repeats)),
                 ("batching", lambda: batching_rows(backbone_dir, inputs, sizes, args.repeats)),
                 ("sinkhorn", lambda: [sinkhorn_row(latent_numel, sizes, args.repeats)]),
                 ("k-means", lambda: [kmeans_row(inputs[1], restarts, args.repeats) for restarts in (1, 3)]),
                 ("evaluation", lambda: [eval_row(sizes, args.repeats)])]
        if args.device == "cuda":
            steps.append(("GPU", lambda: gpu_rows(work / "gpu", sizes, args.repeats)))
        if not args.skip_e2e:
            steps.append(("end to end", lambda: e2e_rows(work / "e2e")))
        rows = []
        for name, step in steps:
            print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
            rows += step()
    text = markdown(rows, args, sizes, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(args.out)
    print(text)


if __name__ == "__main__":
    main()
