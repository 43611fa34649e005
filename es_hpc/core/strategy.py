"""The ES step of Algorithm 1 as an ask/tell strategy: which members an iteration evaluates, and the update that
their rewards make."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .seeds import member_seeds
from .update import coefficients


@dataclass(frozen=True)
class ES:
    """Population N, scales sigma and alpha, shaping and update form of Eq. 1; `seed` roots every iteration's
    member seeds, so every rank asks for the same members and tells the same update."""

    seed: int
    population: int
    sigma: float
    alpha: float
    shaping: str = "zscore"
    update_form: str = "eq1"
    antithetic: bool = False

    @classmethod
    def from_config(cls, es, **changes) -> "ES":
        """The strategy of an `es` config section, with `changes` (e.g. another seed or population) applied."""
        fields = {f.name: getattr(es, f.name) for f in dataclasses.fields(cls)}
        return cls(**{**fields, **changes})

    def ask(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Iteration t's member seeds and signs (s_k = -1 for the negative twin of an antithetic pair)."""
        return member_seeds(self.seed, t, self.population, self.antithetic)

    def tell(self, perturbed, seeds: np.ndarray, signs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """theta += sum_k c_k eps_k for the members' rewards (Eq. 1); returns the coefficients c_k."""
        coef = coefficients(rewards, signs, sigma=self.sigma, alpha=self.alpha, shaping=self.shaping,
                            update_form=self.update_form)
        perturbed.update(seeds, coef)
        return coef
