"""Access to ``../shared/reference/golden/``: outputs of the official DiT, DMGD and Minimax code (numbers
only; its README defines every key), the official tiny DiT converted by the suite, and recorded
randomness that replays the values the official code consumed through the suite's seam
(methods/diffusion/randomness.py)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "reference" / "golden"


def load(name: str) -> dict:
    path = GOLDEN / name
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing: CI runs with ../shared beside the checkout")
    return torch.load(path)


def official_tiny_dit(numerics: str = "official"):
    """The golden tiny official DiT converted into the suite's diffusers network (eval mode, frozen)."""
    from methods.diffusion.official_dit import from_official_state_dict

    tiny = load("tiny_dit.pt")
    return from_official_state_dict(tiny["state_dict"], tiny["config"]["num_heads"], numerics).eval()


class EpsResidual(torch.nn.Module):
    """The golden runs' wrap of the DiT forward (README "eps residual"): x_t added to the ε channels
    of every call, so that a random DiT's latents stay bounded."""

    def __init__(self, transformer: torch.nn.Module, weight: float = 1.0):
        super().__init__()
        self.transformer, self.weight = transformer, weight
        self.config = transformer.config
        self.inputs: list[torch.Tensor] = []   # the latents of every call, for per-step comparisons

    def forward(self, hidden_states, timestep, class_labels):
        self.inputs.append(hidden_states.detach().clone())
        out = self.transformer(hidden_states, timestep=timestep, class_labels=class_labels).sample
        channels = hidden_states.shape[1]
        eps = out[:, :channels] + self.weight * hidden_states
        return _Output(torch.cat([eps, out[:, channels:]], dim=1))


class _Output:
    def __init__(self, sample: torch.Tensor):
        self.sample = sample


class RecordedSample:
    """One sample's recorded official randomness (README "Injected randomness").

    ``step_noise[k]`` is the noise added at loop index 49 − k, ``semantic_noise[k]`` the label noise of
    the network call at loop index 49 − k (rows [cond; null]), ``y_star`` the once-per-sample y*.
    """

    def __init__(self, z: torch.Tensor, step_noise: torch.Tensor, semantic_noise: torch.Tensor | None = None,
                 y_star: int | None = None, steps: int = 50):
        self.z, self.step, self.semantic, self.y_star, self.steps = z, step_noise, semantic_noise, y_star, steps
        self.other_class_calls = 0

    def initial_noise(self, shape: Sequence[int]) -> torch.Tensor:
        return self.z.reshape(shape).clone()

    def step_noise(self, index: int, shape: Sequence[int]) -> torch.Tensor:
        return self.step[self.steps - 1 - index].reshape(shape).clone()

    def label_noise(self, index: int, shape: Sequence[int], distribution: str) -> torch.Tensor:
        assert distribution == "uniform", "the official code draws torch.rand_like"
        return self.semantic[self.steps - 1 - index].reshape(shape).clone()

    def other_class(self, candidates: torch.Tensor, index: int | None) -> int:
        assert index is None, "the official draws y* once per sample"
        assert self.y_star in candidates.tolist()
        self.other_class_calls += 1
        return int(self.y_star)


class RecordedTraining:
    """One training step's recorded official randomness (README ``minimax_step.pt``): t, the noise and,
    when the official drew them (label dropout on), the dropout uniforms. Each value is handed out once,
    in the official order (t, noise, uniforms)."""

    def __init__(self, t: torch.Tensor, noise: torch.Tensor, dropout_uniform: torch.Tensor | None = None):
        self.t, self.recorded_noise, self.uniform = t, noise, dropout_uniform
        self.calls: list[str] = []

    def timesteps(self, batch: int, num_timesteps: int) -> torch.Tensor:
        assert batch == len(self.t) and int(self.t.max()) < num_timesteps
        self.calls.append("timesteps")
        return self.t.clone()

    def noise(self, shape: Sequence[int]) -> torch.Tensor:
        assert tuple(shape) == tuple(self.recorded_noise.shape)
        self.calls.append("noise")
        return self.recorded_noise.clone()

    def dropout_uniform(self, batch: int) -> torch.Tensor:
        assert self.uniform is not None, "the official drew no dropout uniforms in this case"
        assert batch == len(self.uniform)
        self.calls.append("dropout_uniform")
        return self.uniform.clone()
