"""Where DMGD's paper and its official code (solomonWQC/DMGD) differ: one field per difference.

A variant's ``params.fidelity`` is ``{preset: official | paper, <field>: <value>, ...}``: the preset
fills every field and any field may be overridden, so one difference at a time can be ablated.
``official`` reproduces the golden outputs of the official code (``tests/test_golden_dmgd.py``)
except where the suite deliberately departs, marked † in :func:`fidelity_table` (the table of docs/methods.md
is this function's output, kept equal by ``tests/test_fidelity.py``). Sources: the supplementary
(eqs. 40–51, Algorithms 1–2), methods_and_protocols.md §2 and ``reference/golden/README.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from evaluation.core.errors import InputError

# field -> value -> what it means (the table's cells)
CHOICES: dict[str, dict[str, str]] = {
    "label_noise": {
        "uniform": "n ~ U[0, 1) (`torch.rand_like`)",
        "gaussian": "n ~ N(0, I) (eq. 40)",
    },
    "blend": {
        "timestep_lambda": "√λ·y + β_n√(1−λ)·n + β_s√(1−λ)·y*, λ linear in the original t (0 above 900, 1 below 500); "
                           "exploration ỹ = β_n·n",
        "step_sigma": "√σ·y + (1−√σ)(β_s·y* + β_n·n), σ linear in the step index (eq. 40–41); exploration ỹ = n",
    },
    "other_class": {
        "per_sample": "one y* per sample, kept for every step (Algorithm 1, line 6; the official `random.choice` "
                      "before the loop)",
        "per_step": "a new y* at every step",
    },
    "rescale": {
        "pooled_pair": "to the scalar mean and std pooled over the sample's [cond; null] rows",
        "per_vector": "each vector to its own label's mean and std (eq. 42)",
    },
    "clustering_space": {
        "raw": "k-means on raw latents, centres projected onto the sphere by the OT loss",
        "sphere": "k-means on the unit-sphere projections (eq. 45 before Algorithm 2)",
    },
    "kmeans_init": {
        "random": "k data points drawn with replacement (fast_pytorch_kmeans 0.2.x)",
        "k-means++": "k-means++ seeding",
    },
    "kmeans_empty_clusters": {
        "reseed": "an emptied cluster restarts at the point farthest from its centre (sklearn's relocation)",
        "zero": "an emptied cluster's centre becomes 0: NaN on the sphere, so the guidance stops with an error",
    },
    "sinkhorn_order": {
        "rows_first": "each iteration scales rows, then columns (the plan's columns sum to b)",
        "columns_first": "each iteration scales columns, then rows (POT's order)",
    },
    "ot_loss_rows": {
        "all": "Σ_ij γ_ij C_ij over the finished samples' rows and the new one",
        "last": "the new sample's row of ⟨γ, C⟩ (eq. 49)",
    },
    "rho_t": {
        "sigma": "ρ·σ_t, σ_t = exp(½ log Σ_t)",
        "log_variance": "ρ·abs(log Σ_t) (eq. 51, the sign taken so that the step descends)",
    },
}

PRESETS: dict[str, dict[str, str]] = {
    "official": {"label_noise": "uniform", "blend": "timestep_lambda", "other_class": "per_sample",
                 "rescale": "pooled_pair", "clustering_space": "raw", "kmeans_init": "random",
                 "kmeans_empty_clusters": "reseed", "sinkhorn_order": "rows_first", "ot_loss_rows": "all",
                 "rho_t": "sigma"},
    "paper": {"label_noise": "gaussian", "blend": "step_sigma", "other_class": "per_sample",
              "rescale": "per_vector", "clustering_space": "sphere", "kmeans_init": "k-means++",
              "kmeans_empty_clusters": "reseed", "sinkhorn_order": "rows_first", "ot_loss_rows": "last",
              "rho_t": "log_variance"},
}

# what the official code itself does where the `official` preset deliberately departs from it
OFFICIAL_CODE = {"kmeans_empty_clusters": "zero"}
# fields the paper leaves open; its preset follows the official code there
PAPER_SILENT = ("sinkhorn_order",)


@dataclass(frozen=True)
class Fidelity:
    label_noise: str
    blend: str
    other_class: str
    rescale: str
    clustering_space: str
    kmeans_init: str
    kmeans_empty_clusters: str
    sinkhorn_order: str
    ot_loss_rows: str
    rho_t: str


def resolve_fidelity(spec: dict) -> Fidelity:
    """The fields of ``{preset, **overrides}`` (the schema validates the names and values too; this
    check guards callers that bypass it)."""
    preset = spec.get("preset", "official")
    if preset not in PRESETS:
        raise InputError(f"dmgd fidelity preset '{preset}' is unknown; use one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    for name, value in spec.items():
        if name == "preset" or value is None:
            continue
        if name not in CHOICES or value not in CHOICES[name]:
            valid = ", ".join(CHOICES) if name not in CHOICES else ", ".join(CHOICES[name])
            raise InputError(f"dmgd fidelity {name}: {value!r} is not valid; use one of {valid}")
        values[name] = value
    return Fidelity(**values)


def fidelity_schema() -> dict:
    """The JSON-schema keywords of ``params.fidelity`` (an object of the preset and field overrides)."""
    fields_ = {name: {"type": "string", "enum": list(values),
                      "description": ", ".join(f"{PRESETS[p][name]} ({p})" for p in PRESETS)}
               for name, values in CHOICES.items()}
    preset = {"type": "string", "enum": list(PRESETS), "default": "official",
              "description": "The preset the unset fields take."}
    return {"additionalProperties": False, "properties": {"preset": preset, **fields_}}


def fidelity_table() -> str:
    """Markdown table of the two presets, field by field (the fidelity table of docs/methods.md)."""
    lines = ["| field | `paper` | `official` |", "| --- | --- | --- |"]
    for f in fields(Fidelity):
        cells = []
        for preset in ("paper", "official"):
            value = PRESETS[preset][f.name]
            cell = f"`{value}`: {CHOICES[f.name][value]}"
            if preset == "official" and f.name in OFFICIAL_CODE:
                code = OFFICIAL_CODE[f.name]
                cell += f" † (the official code: `{code}`, {CHOICES[f.name][code]})"
            if preset == "paper" and f.name in PAPER_SILENT:
                cell += " (the paper is silent; as the official code)"
            cells.append(cell)
        lines.append(f"| `{f.name}` | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"
