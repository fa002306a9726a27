"""A synthetic short-video recommendation CMDP: a main reward (watch time) and auxiliary user
responses (like, follow) that pull the other way, for constrained RL (`tscac`, `ppo-lagrangian`).

Name it as `dramaturg.envs.recsys:RecommendationCMDP`; its keyword arguments come through
`--env-kwargs`. It follows the setting of Cai et al. 2023 ("Two-Stage Constrained Actor-Critic for
Short Video Recommendation", WWW 2023): a user session is a sequence of recommended videos; after each
the user returns a watch time (the main signal, maximised) and interactions (the auxiliary signals,
to be kept at a level). The simulator itself is the recommender CMDP fixture of shared/METHODS.md
(F6): user interest and fatigue as the state, K items, Bernoulli like/follow anti-correlated with
watch time.

- Catalog (fixed by `catalog_seed`): item j has a topic j mod `num_topics`, a watch propensity
  alpha_j ~ U(0, 1) and a split beta_j ~ U(0, 1); its watch factor is 0.5 + alpha_j, its like
  probability 0.05 + 0.5 (1 - alpha_j) beta_j and its follow probability 0.05 + 0.5 (1 - alpha_j)
  (1 - beta_j): the longer an item is watched, the less it is liked or followed.
- User (drawn at each reset): interest u_g ~ U(0.2, 1) per topic; fatigue f_g = 0.
- Step with item a of topic g: watch time (reward) = (0.5 + alpha_a) u_g (1 - f_g) + N(0, 0.05^2);
  like ~ Bernoulli(p_like,a (0.5 + 0.5 u_g)), follow likewise; then fatigue decays, f <- 0.7 f, and
  f_g <- min(1, f_g + 0.4) for the topic shown, so showing one topic again and again stops paying.
- `info["cost"]` = (1 - like, 1 - follow): a constraint J_c,like <= d asks for at least
  `horizon` - d likes per session. Observation: (u, f, t / horizon); a session ends (terminated)
  after `horizon` items.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


class RecommendationCMDP(gym.Env):
    """Recommend one of `num_items` videos per step for `horizon` steps; reward watch time, costs
    (no like, no follow)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self, num_items: int = 20, num_topics: int = 4, horizon: int = 20, catalog_seed: int = 0
    ):
        if not 2 <= num_topics <= num_items:
            raise ValueError(
                f"RecommendationCMDP: num_topics = {num_topics!r} is invalid: must be in [2, num_items]"
            )
        if horizon < 1:
            raise ValueError(f"RecommendationCMDP: horizon = {horizon!r} is invalid: must be >= 1")
        self.num_items, self.num_topics, self.horizon = (
            int(num_items),
            int(num_topics),
            int(horizon),
        )
        catalog = np.random.default_rng(catalog_seed)
        alpha, beta = catalog.uniform(size=num_items), catalog.uniform(size=num_items)
        self.topic = np.arange(num_items) % num_topics
        self.watch = 0.5 + alpha
        self.p_like = 0.05 + 0.5 * (1.0 - alpha) * beta
        self.p_follow = 0.05 + 0.5 * (1.0 - alpha) * (1.0 - beta)
        self.action_space = gym.spaces.Discrete(num_items)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2 * num_topics + 1,), np.float32)
        self.interest = np.zeros(num_topics)
        self.fatigue = np.zeros(num_topics)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.interest, self.fatigue, [self.t / self.horizon]]).astype(
            np.float32
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.interest = self.np_random.uniform(0.2, 1.0, self.num_topics)
        self.fatigue = np.zeros(self.num_topics)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any):
        a = int(action)
        g = self.topic[a]
        u = self.interest[g]
        watch = (
            self.watch[a] * u * (1.0 - self.fatigue[g]) + 0.05 * self.np_random.standard_normal()
        )
        like = self.np_random.uniform() < self.p_like[a] * (0.5 + 0.5 * u)
        follow = self.np_random.uniform() < self.p_follow[a] * (0.5 + 0.5 * u)
        self.fatigue *= 0.7
        self.fatigue[g] = min(1.0, self.fatigue[g] + 0.4)
        self.t += 1
        info = {
            "cost": (1.0 - float(like), 1.0 - float(follow)),
            "like": float(like),
            "follow": float(follow),
        }
        return self._obs(), float(watch), self.t >= self.horizon, False, info
