"""Gymnasium's classic-control tasks as batched torch environments, step for step the same.

Each class reproduces the arithmetic of Gymnasium 1.4's own implementation, operation by operation
and in the same order, so that from the same state and action both give the same next state,
reward and termination (bit for bit on CPU; see `tests/test_native_classic.py`). States are float64
like Gymnasium's. Where Gymnasium itself computes in float32 (the float32 action, and Continuous
Mountain Car's float32 state), the same float32 operations are done here.

Sines and cosines come from `_cos_sin`: on CPU, `torch.sin`/`torch.cos` use SLEEF's vectorised
routines, which differ from the C library's (and so NumPy's) in the last bit for about one value in
a thousand; Acrobot is chaotic enough for that to show within an episode. `torch.polar` evaluates
the C library's `cos` and `sin` element by element, and its results are NumPy's exactly.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from dramaturg.envs.native.base import NativeVecEnv

F64 = torch.float64
F32 = torch.float32


def _f32(x: float) -> float:
    """The float32 nearest to x, as a Python float (what NumPy compares a float32 scalar with)."""
    return float(torch.tensor(x, dtype=F32))


def _times_f32(x: Tensor, c: float) -> Tensor:
    """x * c for a float32 tensor x, with c rounded to float32 first as NumPy does (torch would keep
    a Python scalar in double precision for the product, and round once at the end)."""
    return x * torch.tensor(c, dtype=F32, device=x.device)


def _powf_square(x: Tensor) -> Tensor:
    """NumPy's `x ** 2` of a float32 scalar, which calls the C library's `powf`: one value in a
    thousand is a last bit away from the exact square. On CPU, torch evaluates `pow` element by element
    with that same function only for strided operands, so both operands are given strides of 2."""
    pair = torch.stack([x, torch.full_like(x, 2.0)], -1)  # base and exponent interleaved
    return torch.pow(pair[..., 0], pair[..., 1])


def _cos_sin(angles: Tensor) -> tuple[Tensor, Tensor]:
    """(cos, sin) of a float64 tensor, equal to the C library's (NumPy's) on CPU."""
    z = torch.polar(torch.ones_like(angles), angles)
    return z.real, z.imag


def _uniform(n: int, low: list[float], high: list[float], generator: torch.Generator) -> Tensor:
    """[n, len(low)] float64 draws from U(low, high), as NumPy's `uniform`: low + (high - low) * u."""
    dev = generator.device
    lo = torch.tensor(low, dtype=F64, device=dev)
    span = torch.tensor(high, dtype=F64, device=dev) - lo
    return lo + span * torch.rand(n, len(low), generator=generator, dtype=F64, device=dev)


def _remainder(a: Tensor, b: float) -> Tensor:
    """NumPy's float `a % b`: C's fmod, moved into the sign of b (torch's `%` rounds differently)."""
    r = torch.fmod(a, b)
    return torch.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


def _first_action(action: Tensor, num_envs: int) -> Tensor:
    """The float32 scalar action of each instance (Gymnasium's `action[0]` of a float32 Box action)."""
    return action.reshape(num_envs, -1)[:, 0].to(F32)


class CartPole(NativeVecEnv):
    """CartPole-v1: Euler integration, +1 for every step including the terminating one (Gymnasium's
    default `sutton_barto_reward=False`), start U(-0.05, 0.05) in every coordinate."""

    gym_id = "CartPole-v1"
    max_episode_steps = 500
    state_dim = 4

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    _high = np.array([x_threshold * 2, np.inf, theta_threshold_radians * 2, np.inf], dtype=np.float32)
    observation_space = gym.spaces.Box(-_high, _high, dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        dev = generator.device
        return torch.rand(n, 4, generator=generator, dtype=F64, device=dev).mul_(0.1).sub_(0.05)

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, x_dot, theta, theta_dot = state.unbind(-1)
        force = (action == 1).to(F64).mul_(2 * self.force_mag).sub_(self.force_mag)  # exactly +-10
        costheta, sintheta = _cos_sin(theta)

        temp = (force + self.polemass_length * (theta_dot * theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * (costheta * costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass

        # Euler, as Gymnasium: positions move with the old velocities
        rates = torch.stack([x_dot, xacc, theta_dot, thetaacc], -1)
        next_state = state + self.tau * rates
        x, theta = next_state[:, 0], next_state[:, 2]
        terminated = (x.abs() > self.x_threshold) | (theta.abs() > self.theta_threshold_radians)
        reward = torch.ones_like(x)
        return next_state, reward, terminated

    def observe(self, state: Tensor) -> Tensor:
        return state.to(F32)


class Pendulum(NativeVecEnv):
    """Pendulum-v1 with g = 10: torque clipped to [-2, 2], angular speed to [-8, 8]; cost
    normalised-angle^2 + 0.1 speed^2 + 0.001 torque^2; start theta U(-pi, pi), speed U(-1, 1)."""

    gym_id = "Pendulum-v1"
    max_episode_steps = 200
    state_dim = 2

    max_speed = 8
    max_torque = 2.0
    dt = 0.05
    g = 10.0
    m = 1.0
    l = 1.0  # noqa: E741 (Gymnasium's name)

    _high = np.array([1.0, 1.0, max_speed], dtype=np.float32)
    observation_space = gym.spaces.Box(-_high, _high, dtype=np.float32)
    action_space = gym.spaces.Box(-max_torque, max_torque, shape=(1,), dtype=np.float32)

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        return _uniform(n, [-math.pi, -1.0], [math.pi, 1.0], generator)

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        th, thdot = state.unbind(-1)
        g, m, l, dt = self.g, self.m, self.l, self.dt  # noqa: E741 (Gymnasium's names)
        # float32 as in Gymnasium: np.clip of the float32 action, then float32 products with it
        u = _first_action(action, state.shape[0]).clamp(-self.max_torque, self.max_torque)
        normalised = _remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = normalised * normalised + 0.1 * (thdot * thdot) + _times_f32(_powf_square(u), 0.001).to(F64)

        sin_th = _cos_sin(th)[1]
        newthdot = thdot + (3 * g / (2 * l) * sin_th + (3.0 / (m * l**2) * u).to(F64)) * dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * dt
        return torch.stack([newth, newthdot], -1), -costs, torch.zeros_like(th, dtype=torch.bool)

    def observe(self, state: Tensor) -> Tensor:
        cos, sin = _cos_sin(state[:, 0])
        return torch.stack([cos, sin, state[:, 1]], -1).to(F32)


class Acrobot(NativeVecEnv):
    """Acrobot-v1: the "book" dynamics integrated by one RK4 step of 0.2 s, no torque noise, angles
    wrapped to [-pi, pi] and speeds bounded to 4 pi and 9 pi; reward -1, and 0 on the terminating
    step; start U(-0.1, 0.1) rounded to float32 as Gymnasium does."""

    gym_id = "Acrobot-v1"
    max_episode_steps = 500
    state_dim = 4

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_LENGTH_2 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi
    # Gymnasium's `wrap` subtracts 2 pi until the angle is in range, one rounding at a time; this
    # many rounds cover one step from any in-range state (an RK4 step moves a joint < 2 turns)
    WRAP_ROUNDS = 4

    _high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
    observation_space = gym.spaces.Box(-_high, _high, dtype=np.float32)
    action_space = gym.spaces.Discrete(3)

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        dev = generator.device
        s = torch.rand(n, 4, generator=generator, dtype=F64, device=dev).mul_(0.2).sub_(0.1)
        return s.to(F32).to(F64)

    def _dsdt(self, s: Tensor, a: Tensor) -> Tensor:
        """Derivative of the state [B, 4] (Gymnasium's `_dsdt`, "book" branch), term for term."""
        m1, m2 = self.LINK_MASS_1, self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1, lc2 = self.LINK_COM_POS_1, self.LINK_COM_POS_2
        I1 = I2 = self.LINK_MOI
        g = 9.8
        pi = math.pi
        theta1, theta2, dtheta1, dtheta2 = s.unbind(-1)
        angles = torch.stack([theta2, theta1 + theta2 - pi / 2.0, theta1 - pi / 2])
        cos, sin = _cos_sin(angles)
        cos_theta2, sin_theta2 = cos[0], sin[0]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos_theta2) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos_theta2) + I2
        phi2 = m2 * lc2 * g * cos[1]
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * sin_theta2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin_theta2
            + (m1 * lc1 + m2 * l1) * g * cos[2]
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin_theta2 - phi2) / (
            m2 * lc2**2 + I2 - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], -1)

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        torque = action.to(F64) - 1.0  # AVAIL_TORQUE = [-1, 0, +1]
        # Gymnasium's rk4 over t = [0, dt]; the torque rides along with derivative 0
        dt = self.dt - 0
        dt2 = dt / 2.0
        y0 = state
        k1 = self._dsdt(y0, torque)
        k2 = self._dsdt(y0 + dt2 * k1, torque)
        k3 = self._dsdt(y0 + dt2 * k2, torque)
        k4 = self._dsdt(y0 + dt * k3, torque)
        ns = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

        angles = ns[:, :2]
        diff = math.pi - (-math.pi)
        for _ in range(self.WRAP_ROUNDS):  # both of Gymnasium's while loops, a round at a time
            turn = (angles > math.pi).to(F64) - (angles < -math.pi).to(F64)
            angles = angles - diff * turn
        speeds = torch.stack(
            [ns[:, 2].clamp(-self.MAX_VEL_1, self.MAX_VEL_1), ns[:, 3].clamp(-self.MAX_VEL_2, self.MAX_VEL_2)], -1
        )
        next_state = torch.cat([angles, speeds], -1)

        s0, s1 = angles.unbind(-1)
        cos = _cos_sin(torch.stack([s0, s1 + s0]))[0]
        terminated = -cos[0] - cos[1] > 1.0
        reward = terminated.to(F64) - 1.0  # -1, and 0 on termination
        return next_state, reward, terminated

    def observe(self, state: Tensor) -> Tensor:
        z = torch.polar(torch.ones_like(state[:, :2]), state[:, :2])  # C library cos and sin
        trig = torch.view_as_real(z).reshape(state.shape[0], 4)  # cos s0, sin s0, cos s1, sin s1
        return torch.cat([trig, state[:, 2:]], -1).to(F32)


class MountainCarContinuous(NativeVecEnv):
    """MountainCarContinuous-v0: force clipped to [-1, 1], speed to 0.07, position to [-1.2, 0.6];
    reward +100 on reaching 0.45 with non-negative speed, minus 0.1 a^2 every step (a unclipped);
    start position U(-0.6, -0.4), speed 0.

    Gymnasium keeps this state in float32 between steps, and its first step after a reset (from
    the float64 state that `reset` makes) computes in float64. The state here is
    (position, velocity, fresh): `fresh` is 1 for a state that `sample_initial` made, and selects
    that first-step arithmetic; the others are float32 values held in float64.
    """

    gym_id = "MountainCarContinuous-v0"
    max_episode_steps = 999
    state_dim = 3

    min_action = -1.0
    max_action = 1.0
    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.45
    goal_velocity = 0
    power = 0.0015

    observation_space = gym.spaces.Box(
        np.array([min_position, -max_speed], dtype=np.float32),
        np.array([max_position, max_speed], dtype=np.float32),
        dtype=np.float32,
    )
    action_space = gym.spaces.Box(min_action, max_action, shape=(1,), dtype=np.float32)

    def sample_initial(self, n: int, generator: torch.Generator) -> Tensor:
        position = _uniform(n, [-0.6], [-0.4], generator)
        return torch.cat([position, torch.zeros_like(position), torch.ones_like(position)], -1)

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p, v, fresh = state.unbind(-1)
        fresh = fresh > 0
        a = _first_action(action, state.shape[0])
        # force = min(max(a, -1.0), 1.0): the float32 action, or a Python float where clipped
        clipped = (a < self.min_action) | (a > self.max_action)
        p32, v32 = p.to(F32), v.to(F32)

        # 0.0025 * math.cos(3 * position): 3 * position in float32 once the state is float32
        arg = torch.where(fresh, p * 3, (p32 * 3).to(F64))
        c = 0.0025 * _cos_sin(arg)[0]
        # force * power - c: float32 for a float32 force (c rounded to float32 first), else float64
        acc32 = _times_f32(a, self.power) - c.to(F32)
        acc = torch.where(clipped, (a > 0).to(F64) * (2 * self.power) - self.power - c, acc32.to(F64))

        # from a fresh (float64) state: float64 throughout, compared with the float64 constants
        v64 = (v + acc).clamp(-self.max_speed, self.max_speed)
        p64 = (p + v64).clamp(self.min_position, self.max_position)
        v64 = torch.where((p64 == self.min_position) & (v64 < 0), torch.zeros_like(v64), v64)
        done64 = (p64 >= self.goal_position) & (v64 >= self.goal_velocity)

        # from a float32 state: float32 throughout, compared with the float32 constants
        v32 = (v32 + acc.to(F32)).clamp(_f32(-self.max_speed), _f32(self.max_speed))
        p32 = (p32 + v32).clamp(_f32(self.min_position), _f32(self.max_position))
        v32 = torch.where((p32 == _f32(self.min_position)) & (v32 < 0), torch.zeros_like(v32), v32)
        done32 = (p32 >= _f32(self.goal_position)) & (v32 >= self.goal_velocity)

        # Gymnasium stores the new state as float32
        position = torch.where(fresh, p64.to(F32), p32).to(F64)
        velocity = torch.where(fresh, v64.to(F32), v32).to(F64)
        terminated = torch.where(fresh, done64, done32)
        ad = a.to(F64)
        reward = terminated.to(F64) * 100.0 - ad * ad * 0.1
        return torch.stack([position, velocity, torch.zeros_like(position)], -1), reward, terminated

    def observe(self, state: Tensor) -> Tensor:
        return state[:, :2].to(F32)
