"""``dmgd``: Dual Matching Guided Diffusion (DMGD, CVPR 2026), training-free.

The supplementary's Algorithm 1 on the shared sampler, in the order of the paper:

1. **Semantic matching** (eqs. 40–43): dynamic label embeddings over three stages, applied to both
   branches of CFG (``methods/diffusion/semantic.py``).
2. **Distribution approximation** (Algorithm 2, eqs. 44–46; Table 6): per class, support points
   and masses from the real training latents: ``kmeans`` (K clusters, masses = cluster
   fractions), ``mean`` (one point, mass 1) or ``dbs`` (K points drawn with probability
   proportional to local density, masses = normalised densities).
3. **Distribution matching** (eqs. 47–51): inside the guidance window, the OT loss between the
   class's finished samples plus the current x̂0 (uniform masses) and the support points
   (Euclidean cost on the unit sphere, Sinkhorn), and a step of the posterior mean down its
   gradient with respect to x_t.
4. **Greedy progressive matching**: sample n of a class matches against the n samples of that
   class finished before it; classes are independent, so the n-th samples of all classes advance
   together in one batch, with one batched Sinkhorn per step.

``fidelity`` chooses, field by field, where the paper and the official code (solomonWQC/DMGD) differ
(methods/dmgd_fidelity.py: label noise, blend weights, y* policy, rescaling, clustering space and
k-means initialisation, empty clusters, Sinkhorn order, OT loss rows, ρ_t), with the presets
``official`` (the default) and ``paper``. ``official`` reproduces the official ``sample.main`` step
by step to 1e-5 (``tests/test_golden_dmgd.py``, ρ 0.5 and ρ 0) except where the suite deliberately
departs: an emptied k-means cluster is re-seeded (the official code's zero centre makes the OT loss
NaN; ``kmeans_empty_clusters: zero`` restores it and the guidance then stops with an error).

In both presets, the gradient reaches x_t through x̂0 only (∂x̂0/∂x_t = 1/√ᾱ_t at fixed ε, as the
official code, which computes ε before enabling gradients) unless ``through_network`` asks for
backpropagation through the DiT, which the paper's wording allows. Real latents are posterior
samples (official: ``latent_dist.sample()``) or means (``latent_posterior: mean``); the official
random horizontal flip at encoding is not reproduced.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from evaluation.core.errors import InputError
from evaluation.core.seeding import MethodStream, generator

from .diffusion.generation import Generation
from .diffusion.kmeans import kmeans_classes
from .diffusion.latents import load_latents
from .diffusion.ot import sinkhorn, sphere_cost, transport_loss, unit_sphere
from .diffusion.sampler import StepState
from .diffusion.semantic import (
    DynamicLabels,
    SemanticSchedule,
    dynamic_label_embedding,
    label_embedders,
    respaced_timesteps,
)
from .dmgd_fidelity import Fidelity, fidelity_schema, resolve_fidelity
from .params import param
from .registry import DistillContext, SyntheticSet, register_method


class GuidanceError(InputError, FloatingPointError):
    """Non-finite OT guidance; the message names the step, the class and the fix."""


@dataclass(frozen=True)
class DmgdParams:
    fidelity: dict = param({"preset": "official"}, **fidelity_schema())  # Where the paper and the official
    # code differ, field by field (methods/dmgd_fidelity.py, the fidelity table of docs/methods.md): a preset
    # (official, the default, or paper) fills every field; any field set here overrides it.
    semantic_matching: bool = param(True)            # Dynamic label embeddings (eqs. 40-42).
    semantic_window: tuple[int, int] = param((25, 45), step_window=True, items={"minimum": -1})  # [t2, t1]
    # step indices: exploration above t1, plain label at or below t2 (t1 >= steps: no exploration, t2 = -1:
    # no refinement).
    beta_n: float = param(0.06, minimum=0)           # Weight of the label noise (beta_n).
    beta_s: float = param(0.01, minimum=0)           # Weight of the other-class embedding (beta_s).
    distribution_matching: bool = param(True)        # OT guidance towards the support points (eqs. 47-51).
    guidance_window: tuple[int, int] = param((30, 45), step_window=True, items={"minimum": 0})  # [lo, hi]
    # step indices (inclusive) where OT guidance is active; lo > hi is empty.
    approximation: str = param("kmeans", enum=["kmeans", "mean", "dbs"])  # Distribution approximation (Table 6).
    support_points: int = param(10, minimum=1)       # K support points per class.
    rho: float = param(0.5, minimum=0)               # Guidance scale rho (official --guidance-scale; README:
    # 0.05 for Nette).
    sinkhorn_epsilon: float = param(0.1, exclusiveMinimum=0)  # Entropic regularisation.
    sinkhorn_iters: int = param(5, minimum=1)        # Sinkhorn iterations.
    log_domain: bool = param(False)                  # Log-domain Sinkhorn (stable for small epsilon).
    through_network: bool = param(False)             # Backpropagate the OT loss through the DiT instead of
    # through x0 only.
    kmeans_iters: int = param(100, minimum=1)        # Lloyd iterations.
    kmeans_restarts: int = param(1, minimum=1)       # k-means restarts (best inertia kept).
    dbs_neighbours: int = param(5, minimum=1)        # Neighbours of the DBS local density.
    latent_posterior: str = param("sample", enum=["sample", "mean"])  # Real latents as posterior samples
    # (official) or means.


# ----------------------------------------------------------------------------- approximation

def support_points(latents: torch.Tensor, params: DmgdParams, fidelity: Fidelity,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Support points on the unit sphere [K, D] and masses [K] of one class (Algorithm 2, Table 6)."""
    flat = latents.flatten(1).double()
    method, k = params.approximation, min(params.support_points, len(flat))
    if method == "mean":
        return unit_sphere(flat.mean(0, keepdim=True)), torch.ones(1, dtype=flat.dtype)
    if method == "dbs":
        density = local_density(flat, params.dbs_neighbours)
        chosen = torch.multinomial(density, k, replacement=False, generator=gen)
        return unit_sphere(flat[chosen]), density[chosen] / density[chosen].sum()
    return kmeans_support_points([latents], params, fidelity, [gen])[0]


def kmeans_support_points(classes: Iterable[torch.Tensor], params: DmgdParams, fidelity: Fidelity,
                          generators: Iterable[torch.Generator]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Algorithm 2's k-means support points [K, D] on the unit sphere and masses [K] of each class,
    the classes clustered together in class-batched k-means calls (read lazily, batch by batch); a
    class of N < K latents gets N points. Each class's result is the one it gets alone."""
    def clustering_data(latents: torch.Tensor) -> torch.Tensor:
        flat = latents.flatten(1).double()
        return unit_sphere(flat) if fidelity.clustering_space == "sphere" else flat
    results = kmeans_classes(map(clustering_data, classes), params.support_points, generators=generators,
                             k_at_most_size=True, iters=params.kmeans_iters, restarts=params.kmeans_restarts,
                             init=fidelity.kmeans_init, empty_clusters=fidelity.kmeans_empty_clusters)
    return [(unit_sphere(result.centers), result.masses) for result in results]


def support_size(params: DmgdParams, labels: torch.Tensor) -> int:
    """The most support points any class of the dataset gets (``labels``: every real latent's label)."""
    if params.approximation == "mean":
        return 1
    return min(params.support_points, int(torch.bincount(labels).max()))


def local_density(points: torch.Tensor, neighbours: int) -> torch.Tensor:
    """Density of each point: inverse mean distance to its nearest neighbours (DBS, Table 6); a lone
    point (a class with one real latent) has no neighbour and density 1."""
    k = min(neighbours, len(points) - 1)
    if k == 0:
        return torch.ones(len(points), dtype=points.dtype)
    distances = torch.cdist(points, points)
    nearest = distances.topk(k + 1, largest=False).values[:, 1:]
    return 1.0 / nearest.mean(1).clamp_min(1e-12)


# ----------------------------------------------------------------------------- distribution matching

class DistributionMatching:
    """The OT guidance hook with the per-class memory of finished samples (greedy progressive).

    ``supports`` and ``masses`` hold one row per class of ``classes`` (dataset labels); the supports
    may be raw (the OT cost projects both sides onto the sphere) and the masses any non-negative
    weights summing to 1 per class."""

    def __init__(self, supports: torch.Tensor, masses: torch.Tensor, params: DmgdParams, fidelity: Fidelity,
                 classes: range):
        self.supports, self.masses, self.params = supports, masses, params   # [C, K, D], [C, K]
        self.fidelity = fidelity
        self.row = {c: k for k, c in enumerate(classes)}
        self.memory: dict[int, list[torch.Tensor]] = {c: [] for c in classes}
        self.classes = torch.empty(0, dtype=torch.long)
        self.rows = torch.empty(0, dtype=torch.long)
        self.finished: torch.Tensor | None = None
        lo, hi = params.guidance_window
        self.window = range(lo, hi + 1)

    def start_batch(self, classes: torch.Tensor) -> None:
        """Classes of the next batch; all share one round, so their memories have equal size."""
        sizes = {len(self.memory[c]) for c in classes.tolist()}
        if len(sizes) != 1:
            raise ValueError("a guided batch must hold samples of one round (equal memory sizes)")
        self.classes = classes
        self.rows = torch.tensor([self.row[c] for c in classes.tolist()], dtype=torch.long)
        self.finished = (torch.stack([torch.stack(self.memory[c]) for c in classes.tolist()])
                         if sizes != {0} else None)                            # [B, n, D]

    def loss(self, x0: torch.Tensor, rows: str) -> torch.Tensor:
        """Per-sample OT loss [B] of x̂0 joined to its class's finished samples (eqs. 48–49)."""
        sources = x0.flatten(1).to(self.supports.dtype)[:, None]              # [B, 1, D]
        if self.finished is not None:
            sources = torch.cat([self.finished.to(sources), sources], dim=1)  # [B, n+1, D]
        targets = self.supports[self.rows].to(sources)                        # [B, K, D]
        a = torch.full(sources.shape[:2], 1.0 / sources.shape[1], dtype=sources.dtype, device=sources.device)
        cost = sphere_cost(sources, targets)
        plan = sinkhorn(a, self.masses[self.rows].to(sources), cost, epsilon=self.params.sinkhorn_epsilon,
                        iters=self.params.sinkhorn_iters, log_domain=self.params.log_domain,
                        order=self.fidelity.sinkhorn_order)
        return transport_loss(plan, cost, rows)

    def __call__(self, state: StepState) -> torch.Tensor | None:
        if state.index not in self.window:
            return None
        with torch.enable_grad():
            if self.params.through_network:
                x_t = state.x_t.detach().requires_grad_(True)
                grad, = torch.autograd.grad(self.loss(state.denoise(x_t), self.fidelity.ot_loss_rows).sum(), x_t)
            else:
                x0 = state.x0.detach().requires_grad_(True)
                grad, = torch.autograd.grad(self.loss(x0, self.fidelity.ot_loss_rows).sum(), x0)
                grad = grad / state.alpha_bar ** 0.5
        grad = grad.to(state.mean.dtype)
        finite = torch.isfinite(grad).flatten(1).all(1)
        if not finite.all():
            bad = int(self.classes[~finite.cpu()][0])
            raise GuidanceError(f"non-finite OT guidance at step index {state.index} (t={state.t}) for class "
                                f"{bad}; lower rho, raise sinkhorn_epsilon or set log_domain: true")
        if self.fidelity.rho_t == "log_variance":
            step = self.params.rho * (2.0 * state.sigma.log()).abs()
        else:
            step = self.params.rho * state.sigma
        return state.mean - step * grad

    @torch.no_grad()
    def finish(self, z0: torch.Tensor) -> list[float]:
        """Final OT loss (eq. 49, its own row) of each finished sample (Figure 4), then add the
        sample to its class's memory."""
        losses = self.loss(z0, "last").tolist()
        for c, z in zip(self.classes.tolist(), z0.flatten(1).to(self.supports.dtype)):
            self.memory[c].append(z)
        return losses


# ----------------------------------------------------------------------------- the method

def class_supports(ctx: DistillContext, params: DmgdParams, fidelity: Fidelity) -> tuple[torch.Tensor, torch.Tensor]:
    """Support points and masses of each class of ``ctx.classes``, from the real latents artifact."""
    real = load_latents(ctx.latents_path)

    def class_latents(c: int) -> torch.Tensor:
        members = real["labels"] == c
        latents = real["mean"][members]
        if params.latent_posterior == "sample":
            noise = torch.randn(latents.shape, generator=generator(ctx.seed, c, MethodStream.DMGD_POSTERIOR))
            latents = latents + real["std"][members] * noise
        return latents

    def support_generator(c: int) -> torch.Generator:
        return generator(ctx.seed, c, MethodStream.DMGD_SUPPORT)
    if params.approximation == "kmeans":   # every class of ctx.classes in class-batched k-means calls
        found = kmeans_support_points(map(class_latents, ctx.classes), params, fidelity,
                                      map(support_generator, ctx.classes))
    else:
        found = [support_points(class_latents(c), params, fidelity, support_generator(c)) for c in ctx.classes]
    supports, masses = [points for points, _ in found], [mass for _, mass in found]
    # dbs/kmeans on a tiny class gives fewer points: pad with zero mass to the largest count over the
    # whole dataset, not over ctx.classes, so that a chunk's tensors (and floats) are the unchunked ones
    k = support_size(params, real["labels"])

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t.new_zeros(k - len(t), *t.shape[1:])])
    # clustered in float64; the guidance runs in the latents' dtype
    return (torch.stack([pad(p) for p in supports]).to(real["mean"].dtype),
            torch.stack([pad(m) for m in masses]).to(real["mean"].dtype))


def generate(generation: Generation, params: DmgdParams, fidelity: Fidelity,
             matching: DistributionMatching | None) -> tuple[dict, dict]:
    """Algorithm 1 over the generation's classes: ``{(class, index): latent}`` and the final OT loss of
    each sample (None without distribution matching). With ``matching``, batches hold one round each
    (greedy progressive matching); semantic matching draws through each sample's randomness."""
    steps = generation.sampler.steps
    t2, t1 = params.semantic_window
    schedule = SemanticSchedule(fidelity.blend, t2, t1, params.beta_n, params.beta_s, steps,
                                generation.backbone.scheduler.config.num_train_timesteps)
    embed_dim = generation.backbone.transformer.config.num_attention_heads * \
        generation.backbone.transformer.config.attention_head_dim
    embedders = label_embedders(generation.backbone.transformer)
    timesteps = [(steps - 1 - k, c.t) for k, c in enumerate(generation.sampler.coefficients)]
    latents, final_losses = {}, {}
    for labels, index in generation.batches(by_round=matching is not None):
        randomness = generation.randomness(labels, index)
        conditioning = None
        if params.semantic_matching and schedule.active:
            # y* is drawn among all the dataset's classes, also when the generation covers a chunk
            dynamic = DynamicLabels(schedule, fidelity, generation.backbone_labels[labels], generation.backbone_labels,
                                    randomness, embed_dim, timesteps)

            def conditioning(i: int, t: int, d: DynamicLabels = dynamic):
                return dynamic_label_embedding(embedders, d.for_step(i, t))
        if matching is not None:
            matching.start_batch(labels)
        z0 = generation.sample(labels, index, [matching] if matching else [], conditioning, randomness=randomness)
        losses = matching.finish(z0) if matching else [None] * len(labels)
        for c, i, z, loss in zip(labels.tolist(), index.tolist(), z0, losses):
            latents[(c, i)], final_losses[(c, i)] = z, loss
    return latents, final_losses


def check_params(params: DmgdParams, info: object, sampler: dict) -> None:
    """Config-time check (registry ``check_params``): the step-index windows are indices of the sampler's
    own schedule (the defaults are for 50 steps), so a window that no step of it falls in would switch a
    stage off silently; refuse it. An intentionally empty guidance window (lo > hi) stays allowed."""
    steps = sampler["steps"]
    lo, hi = params.guidance_window
    if params.distribution_matching and params.rho > 0 and lo <= hi and not (lo <= steps - 1 and hi >= 0):
        raise InputError(f"guidance_window [{lo}, {hi}] holds none of the step indices {steps - 1} … 0 of the "
                         f"sampler's {steps} steps, so OT guidance would never act; give the window in indices of "
                         f"{steps} steps (the defaults are for 50) or set distribution_matching: false")
    t2, t1 = params.semantic_window
    schedule = SemanticSchedule(resolve_fidelity(params.fidelity).blend, t2, t1, params.beta_n,
                                params.beta_s, steps)
    if params.semantic_matching and schedule.active and \
            all(schedule.weights(i, t) is None for i, t in respaced_timesteps(steps)):
        raise InputError(f"semantic_window [{t2}, {t1}] leaves every one of the sampler's {steps} steps at the plain "
                         f"label, so semantic matching would never act; give the window in indices of {steps} steps "
                         f"(the defaults are for 50) or set semantic_matching: false")


@register_method("dmgd", needs_backbone=True, needs_latents=True, params=DmgdParams,
                 check_params=check_params)
def distill(ctx: DistillContext) -> SyntheticSet:
    params = ctx.params
    fidelity = resolve_fidelity(params.fidelity)
    generation = Generation.from_context(ctx)
    matching = None
    if params.distribution_matching:
        matching = DistributionMatching(*class_supports(ctx, params, fidelity), params, fidelity, ctx.classes)
    latents, final_losses = generate(generation, params, fidelity, matching)
    images, out_labels = generation.decode(latents)
    records = {"final_ot_loss": [[final_losses[(c, i)] for i in range(ctx.ipc)]
                                 for c in ctx.classes]} if matching else {}
    return SyntheticSet(images, out_labels, records)
