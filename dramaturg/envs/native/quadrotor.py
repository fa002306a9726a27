"""Crazyflie hover task of "Learning to Fly in Seconds" (Eschmann, Albani, Loianno 2023) in torch.

The simulator follows the authors' code (arplaboratory/learning-to-fly @ d07592d5, the files under
`include/learning_to_fly/simulator/` and `src/config/parameters.h`), not the later `l2f` package,
whose Crazyflie constants differ. Every constant, where it comes from, and where this task differs
from the authors' code is in docs/quadrotor.md.

State, one row per instance, float64 [B, 41 + 4 * history]:
    position p (world, m) [0:3] | quaternion q = (w, x, y, z), body to world [3:7] |
    linear velocity v (world, m/s) [7:10] | angular velocity w (body, rad/s) [10:13] |
    motor speeds (rpm) [13:17] | disturbance force (world, N) [17:20] |
    disturbance torque (body, N m) [20:23] | sensor noise of this state's observation [23:41] |
    past actions, oldest first [41:]
The target is the origin. Actions are four normalised motor-speed set points in [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from dramaturg.envs.native.base import NativeVecEnv
from dramaturg.envs.vec import StepResult

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
# actor's sensor noise std: position, rotation-matrix entries, linear and angular velocity
NOISE_STD = (0.001, 0.001, 0.002, 0.002)

# -- initial states (`parameters/init/default.h`: orientation_biggest_angle) ---------------------
GUIDANCE = 0.1  # probability of starting exactly at the target, level
MAX_POSITION = 0.2  # m, per axis
MAX_ANGLE = 90.0 / 180.0 * 3.14  # rad, as the code writes it (not pi / 2)
MAX_LINEAR_VELOCITY = 1.0  # m/s, per axis
MAX_ANGULAR_VELOCITY = 1.0  # rad/s, per axis
FORCE_STD = MASS * GRAVITY / 20  # N, per-episode constant disturbance (`src/config/parameters.h`)
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
POSITION_COSTS = ("squared", "distance")  # the position term: ||p||^2 (the authors') or ||p||
INITIAL_WEIGHTS = (5.0, 5.0, 0.01, 0.0, 0.01)  # reward_squared_position_only_torque
TARGET_WEIGHTS = (40.0, 5.0, 1.0, 0.0, 1.0)  # ..._curriculum_target, used for evaluation
# curriculum (`src/steps/curriculum.h`): every 100k steps, weight *= factor, capped
CURRICULUM_INTERVAL = 100_000  # the authors' environment steps between raises
CURRICULUM_FACTORS = (1.2, 1.0, 1.4, 1.0, 1.4)
CURRICULUM_CAPS = (40.0, math.inf, 1.0, math.inf, 1.0)
CURRICULUM_FULL = 14  # stages until every weight is capped: 0.01 * 1.4^14 > 1, 5 * 1.2^12 > 40

# -- hover success (docs/quadrotor.md) -----------------------------------------------------------
SUCCESS_RADIUS = 0.1  # m
SUCCESS_WINDOW = 2.0  # s, at the end of the episode

INTEGRATED = 17  # state columns that RK4 integrates: p, q, v, w, rpm
DISTURBANCE = slice(17, 23)  # force, torque
NOISE = slice(23, 41)  # sensor noise of p, R (9), v, w
HISTORY = 41  # first column of the action history
PRIVILEGED_DIM = 28  # the authors' critic input: p, R(q), v, w, force, torque, rpm
ANGLE_TABLE_SIZE = 2049  # knots of the tabulated inverse CDF of the initial rotation angle


def hover_action() -> float:
    """The normalised action whose steady motor speed carries the weight: 4 k rpm^2 = m g."""
    rpm = math.sqrt(MASS * GRAVITY / (4 * THRUST_COEFFICIENT))
    return 2 * rpm / MAX_RPM - 1


def curriculum_stage(steps: Tensor, interval: int) -> Tensor:
    """How many curriculum raises have happened after `steps` environment steps, one per `interval`.

    The authors' code raises the weights whenever its step counter reaches a multiple of 100k
    (`src/steps/curriculum.h`; in their 300k-step run at 100k and 200k only). Beyond
    CURRICULUM_FULL every weight sits at its cap, so later stages change nothing.
    """
    if interval <= 0:
        return torch.zeros_like(steps)
    return (steps // interval).clamp(0, CURRICULUM_FULL)


def curriculum_weights(stage: Tensor, initial_weights: tuple[float, ...] = INITIAL_WEIGHTS) -> Tensor:
    """[..., 5] cost weights of COST_TERMS at curriculum `stage` [...] (0: `initial_weights`).

    The authors multiply and cap once per raise; as every factor is >= 1 that equals one
    multiplication by factor ** stage followed by the cap. Before the first raise nothing is
    capped: initial weights above a cap (`reward_weights`) hold as given.
    """
    options = {"dtype": torch.float64, "device": stage.device}
    initial = torch.tensor(initial_weights, **options)
    factors = torch.tensor(CURRICULUM_FACTORS, **options)
    caps = torch.tensor(CURRICULUM_CAPS, **options)
    stage = stage.unsqueeze(-1)
    raised = torch.minimum(initial * factors ** stage.to(torch.float64), caps)
    return torch.where(stage == 0, initial, raised)


def rotation_matrix(q: Tensor) -> Tensor:
    """[B, 3, 3] body-to-world rotation of unit quaternions q = (w, x, y, z) [B, 4]."""
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, -1).unflatten(-1, (3, 3))


def costs(state: Tensor, action: Tensor, position_cost: str = "squared") -> Tensor:
    """[B, 5] unweighted costs of COST_TERMS for the pre-step state and the clamped action (`squared.h`).

    `position_cost="distance"` makes the position term ||p|| instead of the authors' ||p||^2.
    """
    action = action.to(torch.float64).clamp(-1.0, 1.0)
    squared_distance = state[:, 0:3].square().sum(-1)
    return torch.stack(
        [
            squared_distance.sqrt() if position_cost == "distance" else squared_distance,
            1 - state[:, 3].square(),  # 1 - q_w^2 = sin^2(angle / 2)
            state[:, 7:10].square().sum(-1),
            state[:, 10:13].square().sum(-1),
            (action - ACTION_BASELINE).square().sum(-1),
        ],
        -1,
    )


def squared_reward(cost: Tensor, weights: Tensor, terminated: Tensor, penalty: float = TERMINATION_PENALTY) -> Tensor:
    """[B] reward 2 - 0.5 * (weighted cost [B, 5] . weights [5]); `penalty` (the authors': 0) where the step terminated."""
    reward = REWARD_CONSTANT - REWARD_SCALE * (cost @ weights)
    return torch.where(terminated, torch.full_like(reward, penalty), reward)


def out_of_bounds(state: Tensor) -> Tensor:
    """[B] bool: outside the position, velocity or angular-velocity bounds on any axis."""
    return (
        (state[:, 0:3].abs() > POSITION_LIMIT).any(-1)
        | (state[:, 7:10].abs() > LINEAR_VELOCITY_LIMIT).any(-1)
        | (state[:, 10:13].abs() > ANGULAR_VELOCITY_LIMIT).any(-1)
    )


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


def angle_table(max_angle: float = MAX_ANGLE, size: int = ANGLE_TABLE_SIZE) -> Tensor:
    """Inverse CDF of the rotation angle of a uniform random rotation, given angle <= max_angle.

    The angle of a Haar-uniform rotation has density (1 - cos a) / pi, so its CDF is proportional
    to a - sin a. Knot k holds the angle at u = (k / (size - 1))^3: in s = u^(1/3) the inverse
    is smooth (a ~ s near 0), so linear interpolation between knots is accurate to ~1e-7 rad.
    Solved by Newton's method, in float64, once per environment.
    """
    s = torch.linspace(0.0, 1.0, size, dtype=torch.float64)
    c = s.pow(3) * (max_angle - math.sin(max_angle))  # [size] target values of a - sin a
    angle = (6 * c).pow(1 / 3).clamp(max=max_angle)  # small-angle root: a - sin a ~ a^3 / 6
    for _ in range(30):
        square = angle * angle
        small = angle < 1e-2  # a - sin a by its series there, free of cancellation
        value = torch.where(small, angle * square / 6 * (1 - square / 20 * (1 - square / 42)), angle - torch.sin(angle))
        slope = torch.where(small, square / 2 * (1 - square / 12), 1 - torch.cos(angle)).clamp_min(1e-300)
        angle = (angle - (value - c) / slope).clamp(0.0, max_angle)
    return angle


def interpolate(table: Tensor, s: Tensor) -> Tensor:
    """Piecewise-linear table lookup at s in [0, 1], knots evenly spaced."""
    position = s * (table.shape[0] - 1)
    index = position.floor().long().clamp(0, table.shape[0] - 2)
    return torch.lerp(table[index], table[index + 1], position - index)


def random_rotation(u: Tensor, table: Tensor) -> Tensor:
    """[n, 4] quaternions (w >= 0) uniform over rotations with angle <= the table's, from uniforms u [n, 3].

    Same distribution as the authors' rejection loop (uniform quaternion, redrawn while
    2 acos(w) > max angle), drawn directly: uniform axis, angle by the inverse CDF.
    """
    height, azimuth = 2 * u[:, 0] - 1, 2 * math.pi * u[:, 1]
    ring = (1 - height * height).clamp_min(0.0).sqrt()
    half = interpolate(table, u[:, 2].pow(1 / 3)) / 2  # [n]
    sin_half = torch.sin(half)
    axis = torch.stack([ring * torch.cos(azimuth), ring * torch.sin(azimuth), height], -1)  # on S^2
    return torch.cat([torch.cos(half).unsqueeze(-1), sin_half.unsqueeze(-1) * axis], -1)


class Flight(NamedTuple):
    """What `fly` records of the first episode of each instance."""

    positions: Tensor  # [T + 1, B, 3] true positions from the start; NaN after a termination
    returns: Tensor  # [B] sum of rewards up to the end or the termination
    terminated: Tensor  # [B] bool


class Quadrotor(NativeVecEnv):
    """Hover a Crazyflie at the origin from a random pose, by direct motor-speed commands.

    `action_history` past actions join the observation (0 drops them); `disturbances` draws the
    per-episode force and torque; `observation_noise` adds the authors' sensor noise to the
    actor's observation; `reward_weights` replaces the authors' initial cost weights (5 numbers, in
    the order of COST_TERMS) and `target_reward` uses their final (evaluation) weights;
    `observe_motors` adds the motor speeds to it (the authors' actor infers them from its action
    history; their critic observes them); `curriculum_interval` > 0 raises the cost weights as the authors' curriculum does, once every
    that many simulator steps (the authors: 100_000), counted by the environment itself and
    summed over instances. `privileged` makes the observation a dict, `{"obs": the actor's view,
    "privileged": observe_privileged(state)}`, for an asymmetric critic (TD3/SAC `actor_keys="obs"`).
    `termination_penalty` is the reward of the step that leaves the box (the authors': 0).
    `position_cost="distance"` scores the distance ||p|| instead of its square. `action_repeat`
    holds each action for that many 10 ms simulator steps (the authors act every step, at 100 Hz):
    an episode is then 500 / action_repeat steps of the same 5 s, and a step's reward is the mean
    of its simulator steps' rewards.
    """

    gym_id = None

    def __init__(
        self,
        num_envs: int,
        *,
        action_history: int = ACTION_HISTORY,
        disturbances: bool = True,
        observation_noise: bool = True,
        target_reward: bool = False,
        curriculum_interval: int = 0,
        observe_motors: bool = False,
        reward_weights: Sequence[float] | None = None,
        privileged: bool = False,
        termination_penalty: float = TERMINATION_PENALTY,
        position_cost: str = "squared",
        action_repeat: int = 1,
        **kwargs: Any,
    ):
        if action_history < 0:
            raise ValueError(f"Quadrotor: action_history = {action_history} is invalid: must be >= 0")
        if curriculum_interval < 0:
            raise ValueError(f"Quadrotor: curriculum_interval = {curriculum_interval} is invalid: must be >= 0")
        if target_reward and curriculum_interval:
            raise ValueError("Quadrotor: target_reward and curriculum_interval exclude each other")
        if target_reward and reward_weights is not None:
            raise ValueError("Quadrotor: target_reward and reward_weights exclude each other")
        if reward_weights is not None and (len(reward_weights) != 5 or min(reward_weights) < 0):
            raise ValueError(f"Quadrotor: reward_weights = {reward_weights!r} is invalid: must be 5 numbers >= 0, {COST_TERMS}")
        if not (isinstance(termination_penalty, (int, float)) and math.isfinite(termination_penalty)):
            raise ValueError(f"Quadrotor: termination_penalty = {termination_penalty!r} is invalid: must be a finite number")
        if not isinstance(privileged, bool):
            raise TypeError(f"Quadrotor: privileged = {privileged!r} is invalid: must be true or false")
        if position_cost not in POSITION_COSTS:
            raise ValueError(f"Quadrotor: position_cost = {position_cost!r} is invalid: must be one of {POSITION_COSTS}")
        if not isinstance(action_repeat, int) or isinstance(action_repeat, bool) or action_repeat < 1 or EPISODE_STEPS % action_repeat:
            raise ValueError(
                f"Quadrotor: action_repeat = {action_repeat!r} is invalid: must be an integer >= 1 that divides {EPISODE_STEPS}"
            )
        self.history, self.curriculum_interval, self.observe_motors = action_history, curriculum_interval, observe_motors
        self.privileged, self.termination_penalty = privileged, float(termination_penalty)
        self.position_cost, self.action_repeat = position_cost, action_repeat
        self.max_episode_steps = EPISODE_STEPS // action_repeat
        self.state_dim = HISTORY + 4 * action_history
        super().__init__(num_envs, **kwargs)
        f64 = {"dtype": torch.float64, "device": self.device}
        positions = torch.tensor(ROTOR_POSITIONS, **f64)  # [4, 3]
        up = torch.tensor([0.0, 0.0, 1.0], **f64).expand(4, 3)
        # torque per newton of each rotor's thrust: r_i x z_body plus its drag about z  [4, 3]
        self.mixer = torch.linalg.cross(positions, up) + TORQUE_CONSTANT * torch.tensor(
            ROTOR_YAW_DIRECTIONS, **f64
        ).unsqueeze(-1) * up
        self.inverse_inertia = 1.0 / torch.tensor(INERTIA, **f64)
        self.inertia = torch.tensor(INERTIA, **f64)
        self.gravity = torch.tensor([0.0, 0.0, -GRAVITY], **f64)
        self.disturbance_std = torch.tensor([FORCE_STD] * 3 + [TORQUE_STD] * 3, **f64) * disturbances
        position_noise, rotation_noise, velocity_noise, rate_noise = NOISE_STD
        noise = [position_noise] * 3 + [rotation_noise] * 9 + [velocity_noise] * 3 + [rate_noise] * 3
        self.noise_std = torch.tensor(noise, **f64) * observation_noise
        self.angles = angle_table().to(self.device)
        initial = tuple(reward_weights) if reward_weights is not None else INITIAL_WEIGHTS
        if target_reward:
            initial = TARGET_WEIGHTS
        stages = torch.arange(CURRICULUM_FULL + 1 if curriculum_interval else 1, device=self.device)
        self.stage_weights = curriculum_weights(stages, initial)  # [stages, 5] each curriculum stage's weights
        self.env_steps = torch.zeros((), dtype=torch.long, device=self.device)  # summed over instances
        obs_dim = 18 + 4 * observe_motors + 4 * action_history
        high = np.full(obs_dim, np.inf, dtype=np.float32)
        high[18:] = 1.0  # motor speeds and past actions, both as normalised actions
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        if privileged:
            high = np.full(PRIVILEGED_DIM, np.inf, dtype=np.float32)
            high[-4:] = 1.0  # motor speeds, as normalised actions
            privileged_space = gym.spaces.Box(-high, high, dtype=np.float32)
            spaces = {"obs": self.observation_space, "privileged": privileged_space}
            self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)

    # -- the task -----------------------------------------------------------------------------

    def weights(self) -> Tensor:
        """[5] cost weights of the next step: fixed, or the curriculum's after `env_steps` steps."""
        if not self.curriculum_interval:
            return self.stage_weights[0]
        stage = curriculum_stage(self.env_steps, self.curriculum_interval).reshape(1)
        return self.stage_weights.index_select(0, stage).squeeze(0)  # indexing by a tensor reads it on the host

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        options = {"dtype": torch.float64, "device": self.device, "generator": generator}
        u = torch.rand(n, 13, **options)  # guidance | position 3 | rotation 3 | velocity 3 | rates 3
        normal = torch.randn(n, 24, **options)  # disturbance 6 | sensor noise 18
        guided = u[:, 0:1] < GUIDANCE  # [n, 1] start at the target, level
        position = (2 * u[:, 1:4] - 1) * MAX_POSITION * ~guided
        quaternion = random_rotation(u[:, 4:7], self.angles)
        quaternion = torch.where(guided, quaternion.new_tensor([1.0, 0.0, 0.0, 0.0]), quaternion)
        velocity = (2 * u[:, 7:10] - 1) * MAX_LINEAR_VELOCITY
        angular_velocity = (2 * u[:, 10:13] - 1) * MAX_ANGULAR_VELOCITY
        rpm = torch.full((n, 4), MAX_RPM / 2, dtype=torch.float64, device=self.device)  # action 0
        disturbance = normal[:, :6] * self.disturbance_std
        noise = normal[:, 6:] * self.noise_std
        history = torch.zeros(n, 4 * self.history, dtype=torch.float64, device=self.device)  # = rpm action
        return torch.cat([position, quaternion, velocity, angular_velocity, rpm, disturbance, noise, history], -1)

    def derivative(self, y: Tensor, rpm_setpoint: Tensor, force: Tensor, torque: Tensor) -> Tensor:
        """d/dt of the integrated columns y = (p, q, v, w, rpm) [B, 17]; set points and disturbances held.

        As `multirotor_dynamics` in the authors' `operations_generic.h`: thrust from the current
        motor speeds, rotated into the world; Euler's equation for the body rates; q' = q (x) (0, w) / 2.
        """
        q, v, omega, rpm = y[:, 3:7], y[:, 7:10], y[:, 10:13], y[:, 13:17]
        w, x, yq, z = q.unbind(-1)
        thrust = THRUST_COEFFICIENT * rpm * rpm  # [B, 4] N, along body +z
        body_z = torch.stack([2 * (x * z + w * yq), 2 * (yq * z - w * x), 1 - 2 * (x * x + yq * yq)], -1)
        acceleration = body_z * (thrust.sum(-1, keepdim=True) / MASS) + self.gravity + force / MASS
        wx, wy, wz = omega.unbind(-1)
        q_dot = 0.5 * torch.stack(
            [-x * wx - yq * wy - z * wz, w * wx + yq * wz - z * wy, w * wy + z * wx - x * wz, w * wz + x * wy - yq * wx],
            -1,
        )
        moment = thrust @ self.mixer + torque  # [B, 3] body
        angular_acceleration = (moment - torch.linalg.cross(omega, self.inertia * omega)) * self.inverse_inertia
        rpm_dot = (rpm_setpoint - rpm) / MOTOR_TIME_CONSTANT
        return torch.cat([v, q_dot, acceleration, angular_acceleration, rpm_dot], -1)

    def integrate(self, state: Tensor, action: Tensor, noise: Tensor) -> Tensor:
        """The next state after one RK4 step of DT under clamped actions [B, 4], with its sensor noise [B, 18]."""
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
        history = state[:, HISTORY:]  # shift out the oldest action, append the executed one
        if self.history > 0:
            history = torch.cat([history[:, 4:], action], -1)
        return torch.cat([y[:, :3], q, y[:, 7:13], rpm, state[:, DISTURBANCE], noise, history], -1)

    def simulate(self, state: Tensor, action: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One 10 ms simulator step: the reward scores the pre-step state and action, as the authors' runner does."""
        noise = torch.randn(state.shape[0], 18, dtype=torch.float64, device=self.device, generator=self.generator)
        next_state = self.integrate(state, action, noise * self.noise_std)
        terminated = out_of_bounds(next_state)
        cost = costs(state, action, self.position_cost)
        return next_state, squared_reward(cost, weights, terminated, self.termination_penalty), terminated

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`action_repeat` simulator steps under one action; the reward is their mean, the steps after
        a termination left out (the state stays where it left the box)."""
        weights = self.weights()
        state, reward, terminated = self.simulate(state, action, weights)
        for _ in range(self.action_repeat - 1):
            next_state, next_reward, next_terminated = self.simulate(state, action, weights)
            reward = torch.where(terminated, reward, reward + next_reward)
            state = torch.where(terminated.unsqueeze(-1), state, next_state)
            terminated = terminated | next_terminated
        return state, reward / self.action_repeat, terminated

    def step(self, action: Tensor, *, update_norm: bool = True) -> StepResult:
        result = super().step(action, update_norm=update_norm)
        # simulator steps, after the reward: a step is scored with the weights before it
        self.env_steps = self.env_steps + self.num_envs * self.action_repeat
        return result

    def observe(self, state: Tensor) -> Tensor | dict[str, Tensor]:
        """The actor's view, with `privileged` as `{"obs": it, "privileged": observe_privileged(state)}`."""
        actor = self.observe_actor(state)
        return {"obs": actor, "privileged": self.observe_privileged(state)} if self.privileged else actor

    def observe_actor(self, state: Tensor) -> Tensor:
        """The actor's [B, 18 (+ 4) + 4 H] view: p, R(q) row-major, v, w, each with its sensor noise;
        the motor speeds as normalised actions if `observe_motors`; past actions, oldest first."""
        rotation = rotation_matrix(state[:, 3:7]).flatten(1)
        sensed = torch.cat([state[:, 0:3], rotation, state[:, 7:13]], -1) + state[:, NOISE]
        motors = [state[:, 13:17] * (2 / MAX_RPM) - 1] if self.observe_motors else []
        return torch.cat([sensed, *motors, state[:, HISTORY:]], -1).float()

    def observe_privileged(self, state: Tensor) -> Tensor:
        """The authors' critic input [B, 28]: p, R(q), v, w without noise, disturbance force and torque, rpm in [-1, 1]."""
        rotation = rotation_matrix(state[:, 3:7]).flatten(1)
        rpm = state[:, 13:17] * (2 / MAX_RPM) - 1
        return torch.cat([state[:, 0:3], rotation, state[:, 7:13], state[:, DISTURBANCE], rpm], -1).float()

    @torch.no_grad()
    def fly(self, policy: Callable[[Tensor], Tensor], steps: int = EPISODE_STEPS) -> Flight:
        """Fly one episode of `steps` simulator steps from fresh initial states in every instance,
        without auto-reset, asking `policy` every `action_repeat` of them.

        `policy` maps observations (`observe`'s, so a dict with `privileged`) to actions [B, 4].
        Positions and returns are per simulator step (100 Hz) whatever `action_repeat` is.
        The environment's counters (and so its curriculum) do not move; its random generator does.
        """
        state = self.sample_initial(self.num_envs, self.generator)
        positions = [state[:, 0:3]]
        returns = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        alive = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        weights = self.weights()
        for step in range(steps):
            if step % self.action_repeat == 0:
                action = policy(self.observe(state))
            next_state, reward, terminated = self.simulate(state, action, weights)
            returns = torch.where(alive, returns + reward, returns)
            state = torch.where(alive.unsqueeze(-1), next_state, state)  # the fallen stay where they left
            alive &= ~terminated
            positions.append(torch.where(alive.unsqueeze(-1), state[:, 0:3], math.nan))
        return Flight(torch.stack(positions), returns, ~alive)

    # -- save and restore: the curriculum's step counter is part of the state -------------------

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> Tensor:
        self.env_steps = state["env_steps"].to(self.device)
        return super().load_state_dict(state)


class HoverController:
    """A hand-written hover controller on the true state: the reference the learned policies are
    measured against (benchmarks/quadrotor_hover.py --reference), not a learner.

    It reads the privileged observation (an environment made with `privileged=True`), so it knows
    the disturbance force, which the actor does not. Cascaded PD: the desired acceleration
    -k_p p - k_v v + g - F/m, its horizontal part limited to `max_tilt` from the vertical, gives
    the thrust vector; the body's z axis is turned toward it with natural frequency
    `attitude_frequency` (damping 0.8; yaw rate damped); the collective thrust is the vector's
    whole magnitude, so that a drone lying on its side keeps its motors spinning while it rights
    itself. The per-rotor thrusts solve [T, torque] = A f, and the set point overdrives the
    first-order motors toward the speed they need by `motor_boost`, a lead on their 0.15 s lag.
    """

    def __init__(
        self,
        env: Quadrotor,
        *,
        position_gain: float = 4.0,
        velocity_gain: float = 3.0,
        attitude_frequency: float = 28.0,
        motor_boost: float = 5.0,
        max_tilt: float = 0.6,
    ):
        if not env.privileged:
            raise ValueError("HoverController reads the true state: make the environment with privileged=True")
        f64 = {"dtype": torch.float64, "device": env.device}
        self.gains = (position_gain, velocity_gain, attitude_frequency, motor_boost, math.tan(max_tilt))
        self.inertia = torch.tensor(INERTIA, **f64)
        allocation = torch.cat([torch.ones(1, 4, **f64), env.mixer.T], 0)  # [T, torque] = A f  [4, 4]
        self.allocation_inverse = torch.linalg.inv(allocation)
        self.up = torch.tensor([0.0, 0.0, 1.0], **f64)

    def __call__(self, obs: dict[str, Tensor]) -> Tensor:
        kp, kv, frequency, boost, tilt = self.gains
        s = obs["privileged"].double()
        p, rotation, v, omega = s[:, 0:3], s[:, 3:12].view(-1, 3, 3), s[:, 12:15], s[:, 15:18]
        force, rpm = s[:, 18:21], (s[:, 24:28] + 1) * (MAX_RPM / 2)
        wanted = -kp * p - kv * v + GRAVITY * self.up - force / MASS  # [B, 3] world acceleration
        vertical = wanted[:, 2:].clamp_min(2.0)  # m/s^2: never command a free fall, only a slower climb
        horizontal = wanted[:, :2]
        limit = vertical * tilt
        norm = torch.linalg.vector_norm(horizontal, dim=-1, keepdim=True)
        horizontal = horizontal * torch.where(norm > limit, limit / norm.clamp_min(1e-9), torch.ones_like(norm))
        thrust = MASS * torch.cat([horizontal, vertical], -1)  # [B, 3] world
        magnitude = torch.linalg.vector_norm(thrust, dim=-1, keepdim=True)
        axis = torch.einsum("bji,bj->bi", rotation, thrust / magnitude)  # wanted z axis in the body frame
        tilt_error = torch.linalg.cross(self.up.expand_as(axis), axis)
        torque = self.inertia * (frequency**2 * tilt_error - 2 * 0.8 * frequency * omega)
        torque[:, 2] = self.inertia[2] * -4.0 * omega[:, 2]
        rotor_thrust = (torch.cat([magnitude, torque], -1) @ self.allocation_inverse.T).clamp_min(0.0)
        needed = (rotor_thrust / THRUST_COEFFICIENT).sqrt()
        setpoint = rpm + boost * (needed - rpm)
        return (setpoint * (2 / MAX_RPM) - 1).clamp(-1.0, 1.0).float()
