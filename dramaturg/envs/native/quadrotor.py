"""Crazyflie hover task of "Learning to Fly in Seconds" (Eschmann, Albani, Loianno 2023) in torch.

The simulator follows the authors' code (arplaboratory/learning-to-fly @ d07592d5, the files under
`include/learning_to_fly/simulator/` and `src/config/parameters.h`), not the later `l2f` package,
whose Crazyflie constants differ. Every constant, and where it comes from, is in docs/quadrotor.md.

State, one row per instance, float64 [B, 23 + 4 * history]:
    position p (world, m) [0:3] | quaternion q = (w, x, y, z), body to world [3:7] |
    linear velocity v (world, m/s) [7:10] | angular velocity w (body, rad/s) [10:13] |
    motor speeds (rpm) [13:17] | disturbance force (world, N) [17:20] |
    disturbance torque (body, N m) [20:23] | past actions, oldest first [23:]
The target is the origin. Actions are four normalised motor-speed set points in [-1, 1].
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from dramaturg.envs.native.base import NativeVecEnv

# -- Crazyflie 2.x (learning-to-fly `parameters/dynamics/crazy_flie.h`) --------------------------
MASS = 0.027  # kg
GRAVITY = 9.81  # m/s^2, along world -z
INERTIA = (3.85e-6, 3.85e-6, 5.9675e-6)  # kg m^2, diagonal J
ROTOR_POSITIONS = ((0.028, -0.028, 0.0), (-0.028, -0.028, 0.0), (-0.028, 0.028, 0.0), (0.028, 0.028, 0.0))
ROTOR_YAW_DIRECTIONS = (-1.0, 1.0, -1.0, 1.0)  # sign of each rotor's drag torque about body +z
THRUST_COEFFICIENT = 3.16e-10  # N / rpm^2 (thrust polynomial {0, 0, 3.16e-10})
TORQUE_CONSTANT = 0.005964552  # m: yaw drag torque per newton of rotor thrust
MAX_RPM = 21702.0  # action limit [0, 21702]
MOTOR_TIME_CONSTANT = 0.15  # s, first-order motor lag

# -- simulation and episode (`src/config/parameters.h`, `src/config/config.h`) ---------------------
DT = 0.01  # s, one RK4 step per environment step
EPISODE_STEPS = 500  # 5 s
ACTION_HISTORY = 32  # past actions in the actor's observation

# -- initial states (`parameters/init/default.h`: orientation_biggest_angle) ---------------------
GUIDANCE = 0.1  # probability of starting exactly at the target, level
MAX_POSITION = 0.2  # m, per axis
MAX_ANGLE = 90.0 / 180.0 * 3.14  # rad, as the code writes it (not pi / 2)
MAX_LINEAR_VELOCITY = 1.0  # m/s, per axis
MAX_ANGULAR_VELOCITY = 1.0  # rad/s, per axis
FORCE_STD = MASS * GRAVITY / 20  # N, per-episode constant disturbance
TORQUE_STD = MASS * GRAVITY / 10_000  # N m

# -- termination (`parameters/termination/default.h`: fast_learning) -----------------------------
POSITION_LIMIT = 0.6  # m, any axis
LINEAR_VELOCITY_LIMIT = 1000.0  # m/s (effectively off)
ANGULAR_VELOCITY_LIMIT = 1000.0  # rad/s (effectively off)

# -- reward (`parameters/reward_functions/{squared,default}.h`) ----------------------------------
ACTION_BASELINE = 0.334  # normalised hover action
REWARD_SCALE = 0.5
REWARD_CONSTANT = 2.0
TERMINATION_PENALTY = 0.0
COST_TERMS = ("position", "orientation", "linear_velocity", "angular_velocity", "action")
INITIAL_WEIGHTS = (5.0, 5.0, 0.01, 0.0, 0.01)  # reward_squared_position_only_torque
TARGET_WEIGHTS = (40.0, 5.0, 1.0, 0.0, 1.0)  # ..._curriculum_target, used for evaluation
# curriculum (`src/steps/curriculum.h`): every 100k of the 300k steps, weight *= factor, capped
CURRICULUM_FACTORS = (1.2, 1.0, 1.4, 1.0, 1.4)
CURRICULUM_CAPS = (40.0, math.inf, 1.0, math.inf, 1.0)
CURRICULUM_STAGES = 3  # stages per run: fires at 1/3 and 2/3; the run's last step is skipped

# -- hover success (docs/quadrotor.md) -----------------------------------------------------------
SUCCESS_RADIUS = 0.1  # m
SUCCESS_WINDOW = 2.0  # s, at the end of the episode

INTEGRATED = 17  # state columns that RK4 integrates: p, q, v, w, rpm


def hover_action() -> float:
    """The normalised action whose steady motor speed carries the weight: 4 k rpm^2 = m g."""
    rpm = math.sqrt(MASS * GRAVITY / (4 * THRUST_COEFFICIENT))
    return 2 * rpm / MAX_RPM - 1


def curriculum_weights(progress: float) -> tuple[float, ...]:
    """Cost weights after a fraction `progress` of the paper's 300k-step run (0: initial weights)."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"curriculum progress must lie in [0, 1], got {progress}")
    stages = min(int(progress * CURRICULUM_STAGES), CURRICULUM_STAGES - 1)
    weights = list(INITIAL_WEIGHTS)
    for _ in range(stages):  # the code multiplies and caps once per stage
        weights = [min(w * f, cap) for w, f, cap in zip(weights, CURRICULUM_FACTORS, CURRICULUM_CAPS)]
    return tuple(weights)


def rotation_matrix(q: Tensor) -> Tensor:
    """[B, 3, 3] body-to-world rotation of unit quaternions q = (w, x, y, z) [B, 4]."""
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, -1).unflatten(-1, (3, 3))


def hover_success(
    position_history: Tensor, *, dt: float = DT, window: float = SUCCESS_WINDOW, radius: float = SUCCESS_RADIUS
) -> Tensor:
    """[B] bool: the last `window` seconds of positions [T, B, 3] all lie within `radius` of the target.

    Pass a whole 5 s episode (T = 500); rows after a termination should be NaN, which fails.
    """
    steps = round(window / dt)
    if position_history.dim() != 3 or position_history.shape[-1] != 3:
        raise ValueError(f"position_history must be [T, B, 3], got {tuple(position_history.shape)}")
    if position_history.shape[0] < steps:
        raise ValueError(f"need at least {steps} steps of history, got {position_history.shape[0]}")
    distance = torch.linalg.vector_norm(position_history[-steps:], dim=-1)  # [steps, B]
    return (distance < radius).all(0)


class Quadrotor(NativeVecEnv):
    """Hover a Crazyflie at the origin from a random pose, by direct motor-speed commands.

    `action_history` past actions join the observation (0 drops them); `disturbances` draws the
    per-episode force and torque; `target_reward` scores with the final (evaluation) weights.
    """

    max_episode_steps = EPISODE_STEPS
    gym_id = None

    def __init__(
        self,
        num_envs: int,
        *,
        action_history: int = ACTION_HISTORY,
        disturbances: bool = True,
        target_reward: bool = False,
        **kwargs: Any,
    ):
        self.history = action_history
        self.disturbances = disturbances
        self.state_dim = INTEGRATED + 6 + 4 * action_history
        super().__init__(num_envs, **kwargs)
        f64 = {"dtype": torch.float64, "device": self.device}
        positions = torch.tensor(ROTOR_POSITIONS, **f64)  # [4, 3]
        up = torch.tensor([0.0, 0.0, 1.0], **f64).expand(4, 3)
        # torque per newton of each rotor's thrust: r_i x z_body plus its drag about z  [4, 3]
        self.mixer = torch.linalg.cross(positions, up) + TORQUE_CONSTANT * torch.tensor(
            ROTOR_YAW_DIRECTIONS, **f64
        ).unsqueeze(-1) * up
        self.inertia = torch.tensor(INERTIA, **f64)
        self.gravity = torch.tensor([0.0, 0.0, -GRAVITY], **f64)
        self.disturbance_std = torch.tensor([FORCE_STD] * 3 + [TORQUE_STD] * 3, **f64) * disturbances
        self.weights = torch.tensor(TARGET_WEIGHTS if target_reward else INITIAL_WEIGHTS, **f64)
        obs_dim = 18 + 4 * action_history
        high = np.full(obs_dim, np.inf, dtype=np.float32)
        high[3:12] = 1.0  # rotation matrix entries
        high[18:] = 1.0  # past actions
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)

    # -- the task -----------------------------------------------------------------------------

    def set_curriculum(self, progress: float) -> None:
        """Cost weights after a fraction `progress` in [0, 1] of training, as the authors' curriculum."""
        self.weights = torch.tensor(curriculum_weights(progress), dtype=torch.float64, device=self.device)

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        f64 = {"dtype": torch.float64, "device": self.device, "generator": generator}
        guided = torch.rand(n, 1, **f64) < GUIDANCE  # [n, 1] start at the target, level
        position = (2 * torch.rand(n, 3, **f64) - 1) * MAX_POSITION
        # a uniform random rotation conditioned on angle <= MAX_ANGLE, drawn directly instead of by
        # the code's rejection loop: uniform axis, angle density (1 - cos a) / pi (Haar measure)
        u = torch.rand(n, 3, **f64)
        height, azimuth = 2 * u[:, 0] - 1, 2 * math.pi * u[:, 1]
        ring = (1 - height * height).clamp_min(0.0).sqrt()
        axis = torch.stack([ring * torch.cos(azimuth), ring * torch.sin(azimuth), height], -1)  # on S^2
        angle = _inverse_angle_cdf(u[:, 2])  # [n]
        quaternion = torch.cat([torch.cos(angle / 2).unsqueeze(-1), torch.sin(angle / 2).unsqueeze(-1) * axis], -1)
        identity = torch.zeros_like(quaternion)
        identity[:, 0] = 1.0
        position = torch.where(guided, torch.zeros_like(position), position)
        quaternion = torch.where(guided, identity, quaternion)
        velocity = (2 * torch.rand(n, 3, **f64) - 1) * MAX_LINEAR_VELOCITY
        angular_velocity = (2 * torch.rand(n, 3, **f64) - 1) * MAX_ANGULAR_VELOCITY
        rpm = torch.full((n, 4), MAX_RPM / 2, dtype=torch.float64, device=self.device)  # action 0
        disturbance = torch.randn(n, 6, **f64) * self.disturbance_std
        history = torch.zeros(n, 4 * self.history, dtype=torch.float64, device=self.device)  # = rpm action
        return torch.cat([position, quaternion, velocity, angular_velocity, rpm, disturbance, history], -1)

    def derivative(self, y: Tensor, rpm_setpoint: Tensor, force: Tensor, torque: Tensor) -> Tensor:
        """d/dt of the integrated columns y = (p, q, v, w, rpm) [B, 17]; set points and disturbances held."""
        q, v, omega, rpm = y[:, 3:7], y[:, 7:10], y[:, 10:13], y[:, 13:17]
        w, x, yq, z = q.unbind(-1)
        thrust = THRUST_COEFFICIENT * rpm * rpm  # [B, 4] N, along body +z
        body_z = torch.stack([2 * (x * z + w * yq), 2 * (yq * z - w * x), 1 - 2 * (x * x + yq * yq)], -1)
        acceleration = body_z * (thrust.sum(-1, keepdim=True) / MASS) + self.gravity + force / MASS
        wx, wy, wz = omega.unbind(-1)
        q_dot = 0.5 * torch.stack(  # q (x) (0, w): body rates
            [-x * wx - yq * wy - z * wz, w * wx + yq * wz - z * wy, w * wy + z * wx - x * wz, w * wz + x * wy - yq * wx],
            -1,
        )
        moment = thrust @ self.mixer + torque  # [B, 3] body
        angular_acceleration = (moment - torch.linalg.cross(omega, self.inertia * omega)) / self.inertia  # Euler
        rpm_dot = (rpm_setpoint - rpm) / MOTOR_TIME_CONSTANT
        return torch.cat([v, q_dot, acceleration, angular_acceleration, rpm_dot], -1)

    def integrate(self, state: Tensor, action: Tensor) -> Tensor:
        """The next state after one RK4 step of DT under clamped actions [B, 4] (no reward)."""
        action = action.to(torch.float64).clamp(-1.0, 1.0)
        y, force, torque = state[:, :INTEGRATED], state[:, 17:20], state[:, 20:23]
        setpoint = (action + 1) * (MAX_RPM / 2)  # [B, 4] rpm
        k1 = self.derivative(y, setpoint, force, torque)
        k2 = self.derivative(y + (DT / 2) * k1, setpoint, force, torque)
        k3 = self.derivative(y + (DT / 2) * k2, setpoint, force, torque)
        k4 = self.derivative(y + DT * k3, setpoint, force, torque)
        y = y + (DT / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        q = y[:, 3:7] / torch.linalg.vector_norm(y[:, 3:7], dim=-1, keepdim=True)
        rpm = y[:, 13:17].clamp(0.0, MAX_RPM)
        history = state[:, INTEGRATED + 6 :]  # shift out the oldest action, append this one
        if self.history > 0:
            history = torch.cat([history[:, 4:], action], -1)
        return torch.cat([y[:, :3], q, y[:, 7:13], rpm, state[:, 17:23], history], -1)

    def terminated(self, state: Tensor) -> Tensor:
        """[B] bool: outside the position, velocity or angular-velocity bounds on any axis."""
        return (
            (state[:, 0:3].abs() > POSITION_LIMIT).any(-1)
            | (state[:, 7:10].abs() > LINEAR_VELOCITY_LIMIT).any(-1)
            | (state[:, 10:13].abs() > ANGULAR_VELOCITY_LIMIT).any(-1)
        )

    def costs(self, state: Tensor, action: Tensor) -> Tensor:
        """[B, 5] unweighted costs of COST_TERMS for the pre-step state and the clamped action."""
        action = action.to(torch.float64).clamp(-1.0, 1.0)
        return torch.stack(
            [
                state[:, 0:3].square().sum(-1),
                1 - state[:, 3].square(),  # 1 - q_w^2 = sin^2(angle / 2)
                state[:, 7:10].square().sum(-1),
                state[:, 10:13].square().sum(-1),
                (action - ACTION_BASELINE).square().sum(-1),
            ],
            -1,
        )

    def reward(self, state: Tensor, action: Tensor, terminated: Tensor) -> Tensor:
        """[B] reward of the pre-step state and action; the penalty where the step terminated.

        Pure in its inputs and the current weights, so stored transitions can be re-scored after
        `set_curriculum`, as the authors do with their replay buffer.
        """
        reward = REWARD_CONSTANT - REWARD_SCALE * (self.costs(state, action) @ self.weights)
        return torch.where(terminated, torch.full_like(reward, TERMINATION_PENALTY), reward)

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        next_state = self.integrate(state, action)
        terminated = self.terminated(next_state)
        return next_state, self.reward(state, action, terminated), terminated

    def observe(self, state: Tensor) -> Tensor:
        """The actor's [B, 18 + 4 H] view: p, R(q) row-major, v, w, past actions oldest first."""
        rotation = rotation_matrix(state[:, 3:7]).flatten(1)
        parts = [state[:, 0:3], rotation, state[:, 7:13], state[:, INTEGRATED + 6 :]]
        return torch.cat(parts, -1).float()

    def observe_privileged(self, state: Tensor) -> Tensor:
        """The critic's [B, 28] view: p, R(q), v, w, disturbance force and torque, rpm in [-1, 1]."""
        rotation = rotation_matrix(state[:, 3:7]).flatten(1)
        rpm = state[:, 13:17] * (2 / MAX_RPM) - 1
        return torch.cat([state[:, 0:3], rotation, state[:, 7:13], state[:, 17:23], rpm], -1).float()

    # -- save and restore: the cost weights are part of the state -------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reward_weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> Tensor:
        self.weights = state["reward_weights"].to(self.device)
        return super().load_state_dict(state)


def _inverse_angle_cdf(u: Tensor, max_angle: float = MAX_ANGLE) -> Tensor:
    """Angles a in [0, max_angle] with density proportional to 1 - cos a, from uniforms u [n].

    Solves a - sin a = u (m - sin m) by Newton's method from the small-angle root (6 c)^(1/3),
    a fixed number of iterations so that nothing waits on the host.
    """
    c = u * (max_angle - math.sin(max_angle))
    angle = (6 * c).pow(1 / 3).clamp(max=max_angle)
    for _ in range(8):
        small = angle < 1e-2  # a - sin a by its series there, free of cancellation
        square = angle * angle
        series = angle * square / 6 * (1 - square / 20 * (1 - square / 42))
        value = torch.where(small, series, angle - torch.sin(angle))
        slope = torch.where(small, square / 2 * (1 - square / 12), 1 - torch.cos(angle)).clamp_min(1e-300)
        angle = (angle - (value - c) / slope).clamp(0.0, max_angle)
    return angle
