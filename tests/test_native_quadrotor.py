"""The Crazyflie hover task against hand computations: physics, reward, termination, curriculum,
initial states, success criterion, determinism and exact save/restore."""

from __future__ import annotations

import math

import pytest
import torch

import dramaturg
from dramaturg.envs.native import native_class
from dramaturg.envs.native import quadrotor as quad
from dramaturg.runtime.checkpoint import load_latest, read_state, write_state
from tests.test_hot_path import HostReads

Quadrotor = quad.Quadrotor


def still_state(env: Quadrotor, n: int, *, rpm: float = 0.0) -> torch.Tensor:
    """[n, S] at the origin, level, at rest, every motor at `rpm`, no disturbance or sensor noise."""
    state = torch.zeros(n, env.state_dim, dtype=torch.float64)
    state[:, 3] = 1.0
    state[:, 13:17] = rpm
    return state


def ideal(n: int = 1, **kwargs) -> Quadrotor:
    return Quadrotor(n, seed=0, disturbances=False, observation_noise=False, **kwargs)


def rpm_of(action: float) -> float:
    return (action + 1) / 2 * quad.MAX_RPM


def test_registered_and_hover_constants():
    assert native_class("dramaturg/Quadrotor-v0") is Quadrotor
    # 4 k rpm^2 = m g at rpm ~ 14476, the authors' action baseline 0.334
    assert math.isclose(rpm_of(quad.hover_action()), 14475.6, abs_tol=1.0)
    assert abs(quad.hover_action() - quad.ACTION_BASELINE) < 2e-4


def test_hover_action_holds_a_still_drone_level():
    env = ideal(action_history=0)
    hover = quad.hover_action()
    state = still_state(env, 1, rpm=rpm_of(hover))
    action = torch.full((1, 4), hover)
    for _ in range(quad.EPISODE_STEPS):
        state, _, terminated = env.dynamics(state, action)
    assert not terminated.any()
    assert state[0, 0:3].abs().max() < 1e-5 and state[0, 7:13].abs().max() < 1e-5
    assert torch.allclose(state[0, 3:7], torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(state[0, 13:17], torch.full((4,), rpm_of(hover), dtype=torch.float64))
    # the authors' rounded baseline 0.334 leaves |dv_z/dt| < 1e-3 m/s^2
    derivative = env.derivative(still_state(env, 1, rpm=rpm_of(0.334))[:, :17], torch.full((1, 4), rpm_of(0.334)), torch.zeros(1, 3), torch.zeros(1, 3))
    assert abs(derivative[0, 9].item()) < 1e-3


def test_motors_off_fall_freely_at_g():
    env = ideal(action_history=0)
    state = still_state(env, 1, rpm=0.0)
    steps = 30
    for _ in range(steps):
        state, _, _ = env.dynamics(state, torch.full((1, 4), -1.0))
    t = steps * quad.DT
    assert math.isclose(state[0, 9].item(), -quad.GRAVITY * t, rel_tol=1e-12)  # v_z = -g t
    assert math.isclose(state[0, 2].item(), -quad.GRAVITY * t * t / 2, rel_tol=1e-12)  # RK4 is exact here
    assert state[0, [0, 1, 7, 8, 10, 11, 12]].abs().max() == 0.0


@pytest.mark.parametrize(
    ("rotors", "axis", "sign"),
    [
        ((2, 3), 0, +1),  # rotors at +y push the +y side up: positive roll about body x
        ((0, 3), 1, -1),  # rotors at +x push the +x side up: negative pitch about body y
        ((1, 3), 2, +1),  # rotors 2 and 4 turn the other way: their drag yaws about +z
    ],
)
def test_differential_thrust_gives_hand_computed_angular_acceleration(rotors, axis, sign):
    env = ideal(action_history=0)
    hover, delta = quad.hover_action(), 0.05
    action = torch.full((1, 4), hover, dtype=torch.float64)
    action[0, list(rotors)] += delta
    rpm = torch.tensor([rpm_of(a) for a in action[0].tolist()], dtype=torch.float64)
    state = still_state(env, 1)
    state[0, 13:17] = rpm  # the motors already at their set points, so the torque is constant
    thrust = quad.THRUST_COEFFICIENT * rpm**2  # [4] N
    x = torch.tensor([p[0] for p in quad.ROTOR_POSITIONS], dtype=torch.float64)
    y = torch.tensor([p[1] for p in quad.ROTOR_POSITIONS], dtype=torch.float64)
    spin = torch.tensor(quad.ROTOR_YAW_DIRECTIONS, dtype=torch.float64)
    torque = torch.stack([(y * thrust).sum(), (-x * thrust).sum(), quad.TORQUE_CONSTANT * (spin * thrust).sum()])
    expected = torque[axis].item() / quad.INERTIA[axis]  # rad/s^2, w x Jw = 0 about one principal axis
    next_state, _, _ = env.dynamics(state, action)
    rates = next_state[0, 10:13] / quad.DT
    assert math.copysign(1.0, expected) == sign
    assert math.isclose(rates[axis].item(), expected, rel_tol=1e-9)
    others = [i for i in range(3) if i != axis]
    assert rates[others].abs().max() < 1e-9 * abs(expected)
    # the magnitude by hand: roll/pitch 0.028 m * 2 * (thrust difference) / J, yaw 0.005964552 m * ...
    difference = quad.THRUST_COEFFICIENT * (rpm_of(hover + delta) ** 2 - rpm_of(hover) ** 2)
    arm = quad.TORQUE_CONSTANT if axis == 2 else 0.028
    assert math.isclose(abs(expected), arm * 2 * difference / quad.INERTIA[axis], rel_tol=1e-12)


def test_motor_speed_follows_its_set_point_with_the_time_constant():
    env = ideal(action_history=0)
    state = still_state(env, 1, rpm=0.0)
    steps = 15  # 0.15 s, one time constant
    for _ in range(steps):
        state, _, _ = env.dynamics(state, torch.ones(1, 4))
    expected = quad.MAX_RPM * (1 - math.exp(-steps * quad.DT / quad.MOTOR_TIME_CONSTANT))
    assert torch.allclose(state[0, 13:17], torch.full((4,), expected, dtype=torch.float64), rtol=1e-6)


def test_quaternion_stays_unit_and_history_records_executed_actions():
    env = Quadrotor(64, seed=1)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        action = 3 * torch.randn(64, 4, generator=gen)  # beyond the bounds too: clamping is part of the step
        before = env.state.clone()
        env.state, _, _ = env.dynamics(env.state, action)
        norm = torch.linalg.vector_norm(env.state[:, 3:7], dim=-1)
        assert (norm - 1).abs().max() < 1e-12
        assert torch.equal(env.state[:, -4:], action.double().clamp(-1, 1))
        assert torch.equal(env.state[:, quad.HISTORY : -4], before[:, quad.HISTORY + 4 :])
        assert (env.state[:, 13:17] >= 0).all() and (env.state[:, 13:17] <= quad.MAX_RPM).all()


def test_reward_equals_hand_computation():
    env = ideal(2)
    state = still_state(env, 2)
    state[:, 0:3] = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)
    angle = 0.3  # about x
    state[:, 3:7] = torch.tensor([math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0], dtype=torch.float64)
    state[:, 7:10] = torch.tensor([0.5, 0.0, -1.0], dtype=torch.float64)
    state[:, 10:13] = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    action = torch.tensor([[0.5, 0.2, -0.3, 2.0]] * 2, dtype=torch.float64)  # the last is clamped to 1
    position, orientation, velocity = 0.01 + 0.04 + 0.0025, math.sin(angle / 2) ** 2, 0.25 + 1.0
    action_cost = (0.5 - 0.334) ** 2 + (0.2 - 0.334) ** 2 + (-0.3 - 0.334) ** 2 + (1 - 0.334) ** 2
    initial = 2 - 0.5 * (5 * position + 5 * orientation + 0.01 * velocity + 0.01 * action_cost)
    target = 2 - 0.5 * (40 * position + 5 * orientation + 1.0 * velocity + 1.0 * action_cost)
    terminated = torch.tensor([False, True])
    weights = torch.tensor(quad.INITIAL_WEIGHTS, dtype=torch.float64)
    reward = quad.squared_reward(quad.costs(state, action), weights, terminated)
    assert math.isclose(reward[0].item(), initial, rel_tol=1e-12) and reward[1].item() == 0.0
    own = 2 - 0.5 * (20 * position + 1 * orientation + 0.5 * velocity + 3 * 5.0 + 0.1 * action_cost)  # |w|^2 = 5
    environments = ((ideal(2), initial), (ideal(2, target_reward=True), target),
                    (ideal(2, reward_weights=[20, 1, 0.5, 3, 0.1]), own))
    for env, expected in environments:
        _, reward, _ = env.dynamics(state, action)  # scores the pre-step state: nothing terminates here
        assert torch.allclose(reward, torch.tensor([expected] * 2, dtype=torch.float64), rtol=1e-12)


def test_termination_at_the_position_bound():
    env = ideal(3)
    env.reset()
    state = still_state(env, 3, rpm=rpm_of(quad.hover_action()))
    state[:, 0] = torch.tensor([0.5999, 0.5999, -0.5999], dtype=torch.float64)
    state[:, 7] = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)  # out, in, out
    env.state = state
    step = env.step(torch.full((3, 4), quad.hover_action()))
    assert step.terminated.tolist() == [1.0, 0.0, 1.0] and step.truncated.tolist() == [0.0, 0.0, 0.0]
    assert step.rewards[0].item() == 0.0 and step.rewards[2].item() == 0.0 and step.rewards[1].item() > 0
    assert step.final_obs[0, 0].item() > quad.POSITION_LIMIT and step.final_obs[2, 0].item() < -quad.POSITION_LIMIT
    assert env.elapsed.tolist() == [0, 1, 0]  # the ended ones restarted in the same step
    bounds = still_state(env, 4)
    bounds[:, 0:3] = torch.tensor([[0.6, 0, 0], [0, -0.6, 0], [0, 0, 0.6000001], [0, -0.6000001, 0]], dtype=torch.float64)
    assert quad.out_of_bounds(bounds).tolist() == [False, False, True, True]


def test_episode_truncates_after_five_seconds():
    env = ideal(2)
    env.reset()
    env.state = still_state(env, 2, rpm=rpm_of(quad.hover_action()))
    for t in range(quad.EPISODE_STEPS):
        step = env.step(torch.full((2, 4), quad.hover_action()))
        assert bool(step.truncated.any()) == (t == quad.EPISODE_STEPS - 1)
    assert not step.terminated.any()
    assert [length for _, length in env.pop_finished()] == [500, 500]


def test_curriculum_weights_at_the_stage_boundaries():
    steps = torch.tensor([0, 99_999, 100_000, 199_999, 200_000, 299_999, 10**9])
    assert quad.curriculum_stage(steps, quad.CURRICULUM_INTERVAL).tolist() == [0, 0, 1, 1, 2, 2, quad.CURRICULUM_FULL]
    assert quad.curriculum_stage(steps, 0).tolist() == [0] * 7
    weights = quad.curriculum_weights(torch.tensor([0, 1, 2]))
    expected = [
        [5.0, 5.0, 0.01, 0.0, 0.01],
        [6.0, 5.0, 0.014, 0.0, 0.014],  # position x1.2, velocity and action x1.4, as curriculum.h
        [7.2, 5.0, 0.0196, 0.0, 0.0196],  # where the authors' 300k-step run ends
    ]
    assert torch.allclose(weights, torch.tensor(expected, dtype=torch.float64), rtol=1e-12)
    # the caps (40 for position, 1 for velocity and action) are the evaluation weights, reached at last
    capped = torch.tensor(quad.TARGET_WEIGHTS, dtype=torch.float64)
    assert not torch.equal(quad.curriculum_weights(torch.tensor(quad.CURRICULUM_FULL - 1)), capped)
    assert torch.equal(quad.curriculum_weights(torch.tensor(quad.CURRICULUM_FULL)), capped)
    assert torch.equal(quad.curriculum_weights(torch.tensor(10**6)), capped)
    # weights given above a cap hold until the first raise, which caps them (min(w * factor, cap))
    above = quad.curriculum_weights(torch.tensor([0, 1]), (100.0, 5.0, 2.0, 0.0, 0.5))
    assert above.tolist() == [[100.0, 5.0, 2.0, 0.0, 0.5], [40.0, 5.0, 1.0, 0.0, 0.7]]
    fixed = Quadrotor(1, reward_weights=[100.0, 5.0, 2.0, 0.0, 0.5])
    assert fixed.weights().tolist() == [100.0, 5.0, 2.0, 0.0, 0.5]


def test_termination_penalty_replaces_the_reward_of_the_terminating_step():
    env, penalised = ideal(2), ideal(2, termination_penalty=-50.0)
    state = still_state(env, 2, rpm=rpm_of(quad.hover_action()))
    state[0, 0], state[0, 7] = 0.5999, 1.0  # leaves the box in this step; the second hovers
    action = torch.full((2, 4), quad.hover_action(), dtype=torch.float64)
    (_, plain, ended), (_, reward, _) = env.dynamics(state, action), penalised.dynamics(state, action)
    assert ended.tolist() == [True, False]
    assert plain[0].item() == 0.0 and reward[0].item() == -50.0 and reward[1].item() == plain[1].item() > 0
    for bad in (math.nan, math.inf, "1"):
        with pytest.raises(ValueError, match="termination_penalty"):
            Quadrotor(1, termination_penalty=bad)


def test_distance_position_cost_scores_the_distance_not_its_square():
    state = still_state(ideal(), 2)
    state[:, 0:3] = torch.tensor([[0.3, 0.0, -0.4], [0.0, 0.05, 0.0]], dtype=torch.float64)  # 0.5 m, 0.05 m away
    action = torch.full((2, 4), 0.334, dtype=torch.float64)
    assert quad.costs(state, action)[:, 0].tolist() == pytest.approx([0.25, 0.0025], rel=1e-12)
    assert quad.costs(state, action, "distance")[:, 0].tolist() == pytest.approx([0.5, 0.05], rel=1e-12)
    env = ideal(2, position_cost="distance", reward_weights=[10.0, 0.0, 0.0, 0.0, 0.0])
    _, reward, _ = env.dynamics(state, action)
    assert reward.tolist() == pytest.approx([2 - 0.5 * 10 * 0.5, 2 - 0.5 * 10 * 0.05], rel=1e-12)
    with pytest.raises(ValueError, match="position_cost = 'cubic' is invalid"):
        Quadrotor(1, position_cost="cubic")


def test_action_repeat_holds_the_action_for_that_many_simulator_steps():
    single, held = ideal(3), ideal(3, action_repeat=4, curriculum_interval=1000)
    assert (single.max_episode_steps, held.max_episode_steps) == (500, 125)
    state = still_state(single, 3, rpm=rpm_of(0.1))
    state[:, 7:10] = torch.tensor([[0.3, -0.2, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    state[2, 2], state[2, 9] = -0.59, -1.0  # leaves the box in the first of the four steps
    action = torch.tensor([[0.5, 0.2, 0.4, 0.3], [0.334] * 4, [0.334] * 4], dtype=torch.float64)
    expected, rewards, ended = state, [], torch.zeros(3, dtype=torch.bool)
    for _ in range(4):
        step_state, reward, terminated = single.dynamics(expected, action)
        rewards.append(torch.where(ended, 0.0, reward))
        expected = torch.where(ended.unsqueeze(-1), expected, step_state)
        ended = ended | terminated
    next_state, reward, terminated = held.dynamics(state, action)
    assert torch.equal(next_state, expected) and terminated.tolist() == [False, False, True]
    assert torch.allclose(reward, torch.stack(rewards).sum(0) / 4, rtol=1e-12, atol=0)
    assert next_state[2, 2].item() < -quad.POSITION_LIMIT  # kept where it left, not stepped on
    held.reset()
    held.step(torch.zeros(3, 4))
    assert held.env_steps.item() == 12  # simulator steps, the curriculum's clock
    calls = []
    flight = held.fly(lambda obs: calls.append(obs) or torch.full((obs.shape[0], 4), quad.hover_action()))
    assert flight.positions.shape == (quad.EPISODE_STEPS + 1, 3, 3) and len(calls) == 125  # per simulator step
    for bad in (0, 3, 2.0, True):
        with pytest.raises(ValueError, match=f"action_repeat = {bad!r} is invalid: must be an integer >= 1 that divides 500"):
            Quadrotor(1, action_repeat=bad)


def test_reference_controller_hovers_from_most_random_starts():
    """The hand-written controller on the true state: the test the learned policies take (1000
    starts: 94.7-95.6% over three seeds); here 256 starts, which the controller must not lose
    more than 10% of."""
    env = Quadrotor(256, seed=3, target_reward=True, observe_motors=True, action_history=0, privileged=True)
    flight = env.fly(quad.HoverController(env))
    assert quad.hover_success(flight.positions[1:]).double().mean().item() >= 0.9
    with pytest.raises(ValueError, match="privileged=True"):
        quad.HoverController(Quadrotor(1))


def test_environment_counts_its_steps_and_scores_each_with_the_weights_before_it():
    env = ideal(4, curriculum_interval=8)  # raises after 8 and 16 steps, summed over the 4 instances
    env.reset()
    hover = torch.full((4, 4), quad.hover_action())
    seen = []
    for _ in range(6):
        env.state = still_state(env, 4, rpm=rpm_of(quad.hover_action()))
        env.state[:, 7] = 1.0  # a velocity cost that only the curriculum's weight scales
        before = env.env_steps.item()
        reward = env.step(hover).rewards[0].item()
        # the curriculum scales the velocity and action weights alike: cost = w (1 + action cost)
        weight = (2 - reward) / 0.5 / (1 + 4 * (quad.hover_action() - 0.334) ** 2)
        seen.append((before, round(weight, 5)))
    assert seen == [(0, 0.01), (4, 0.01), (8, 0.014), (12, 0.014), (16, 0.0196), (20, 0.0196)]
    assert env.env_steps.item() == 24
    with pytest.raises(ValueError, match="curriculum_interval"):
        Quadrotor(1, curriculum_interval=-1)
    with pytest.raises(ValueError, match="exclude"):
        Quadrotor(1, curriculum_interval=10, target_reward=True)


def test_hover_success_criterion():
    T, B = quad.EPISODE_STEPS, 5
    positions = torch.zeros(T, B, 3, dtype=torch.float64)
    positions[:, 1, 0] = 0.0999  # inside the whole time
    positions[-1, 2, 2] = -0.1  # touches the radius at the very end: fails
    positions[: T - 200, 3] = 0.5  # far away before the last 2 s, inside after
    positions[T - 200, 4] = 0.06  # |(0.06, 0.06, 0.06)| = 0.104 once, at the window's first step
    positions[250:, 0] = math.nan  # terminated
    positions[:, 0, :] = torch.where(torch.isnan(positions[:, 0, :]), positions[:, 0, :], 0.0)
    expected = [False, True, False, True, False]
    assert quad.hover_success(positions).tolist() == expected
    assert quad.hover_success(positions[-200:]).tolist() == expected
    with pytest.raises(ValueError, match="at least 200"):
        quad.hover_success(positions[-199:])
    with pytest.raises(ValueError, match=r"\[T, B, 3\]"):
        quad.hover_success(positions[..., :2])


def test_fly_records_positions_and_stops_scoring_at_termination():
    env = ideal(8, target_reward=True)
    flight = env.fly(lambda obs: torch.full((obs.shape[0], 4), -1.0))  # motors off: everyone falls out
    assert flight.positions.shape == (quad.EPISODE_STEPS + 1, 8, 3)
    assert flight.terminated.all() and torch.isnan(flight.positions[-1]).all()
    assert not quad.hover_success(flight.positions[1:]).any()
    assert (flight.returns < 2 * 60).all()  # ~0.35 s of flight at most 2 a step


def test_initial_state_distribution():
    n = 20_000
    env = Quadrotor(n, seed=3)
    state = env.sample_initial(n, env.generator)
    position, q = state[:, 0:3], state[:, 3:7]
    guided = (position == 0).all(-1)
    assert abs(guided.double().mean().item() - quad.GUIDANCE) < 4 * math.sqrt(0.09 / n)  # ~10%, 4 sigma
    assert torch.equal(q[guided], torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64).expand(int(guided.sum()), 4))
    assert position.abs().max() <= quad.MAX_POSITION and position[~guided].abs().max() > 0.99 * quad.MAX_POSITION
    assert (torch.linalg.vector_norm(q, dim=-1) - 1).abs().max() < 1e-12
    angle = 2 * torch.acos(q[:, 0].clamp(-1, 1))
    assert angle.max() <= quad.MAX_ANGLE + 1e-9 and angle.max() > 0.99 * quad.MAX_ANGLE
    # uniform random rotations given angle <= max: P(angle <= a) = (a - sin a) / (m - sin m)
    m = quad.MAX_ANGLE
    for a in (0.4, 0.8, 1.2, 1.5):
        expected = (a - math.sin(a)) / (m - math.sin(m))
        assert abs((angle[~guided] <= a).double().mean().item() - expected) < 0.015
    axis = q[~guided, 1:] / torch.linalg.vector_norm(q[~guided, 1:], dim=-1, keepdim=True)
    assert axis.mean(0).abs().max() < 0.03  # no preferred axis
    for columns, bound in (((7, 10), quad.MAX_LINEAR_VELOCITY), ((10, 13), quad.MAX_ANGULAR_VELOCITY)):
        values = state[:, columns[0] : columns[1]]
        assert values.abs().max() <= bound and values.abs().max() > 0.99 * bound
    assert (state[:, 13:17] == quad.MAX_RPM / 2).all()  # normalised action 0
    assert (state[:, quad.HISTORY :] == 0).all()
    force, torque = state[:, 17:20], state[:, 20:23]
    assert abs(force.std().item() / quad.FORCE_STD - 1) < 0.03 and abs(torque.std().item() / quad.TORQUE_STD - 1) < 0.03
    no_disturbance = Quadrotor(16, seed=3, disturbances=False)
    assert (no_disturbance.sample_initial(16, no_disturbance.generator)[:, 17:23] == 0).all()


def test_angle_table_inverts_the_angle_cdf():
    table = quad.angle_table()
    s = torch.linspace(0, 1, 1001, dtype=torch.float64)
    angle = quad.interpolate(table, s)
    m = quad.MAX_ANGLE
    cdf = (angle - torch.sin(angle)) / (m - math.sin(m))
    assert (cdf - s**3).abs().max() < 1e-7
    assert angle[0] == 0 and math.isclose(angle[-1].item(), m, rel_tol=1e-12)


def test_observation_layout_and_sensor_noise():
    env = Quadrotor(4000, seed=0)
    env.reset()
    obs = env.observe(env.state)
    assert obs.shape == (4000, 18 + 4 * quad.ACTION_HISTORY) and obs.dtype == torch.float32
    assert env.observation_space.shape == obs.shape[1:]
    assert torch.equal(obs, env.observe(env.state))  # the noise belongs to the state: observing is pure
    rotation = quad.rotation_matrix(env.state[:, 3:7]).flatten(1)
    true = torch.cat([env.state[:, 0:3], rotation, env.state[:, 7:13]], -1)
    error = obs[:, :18].double() - true
    expected = [0.001] * 12 + [0.002] * 6
    assert torch.allclose(error.std(0), torch.tensor(expected, dtype=torch.float64), rtol=0.1)
    critic = env.observe_privileged(env.state)
    assert critic.shape == (4000, 28) and torch.allclose(critic[:, :18].double(), true, atol=1e-6)
    assert torch.allclose(critic[:, 24:], torch.zeros(4000, 4))  # rpm at normalised 0
    quiet = Quadrotor(8, seed=0, observation_noise=False, action_history=0)
    quiet.reset()
    rotation = quad.rotation_matrix(quiet.state[:, 3:7]).flatten(1)
    expected_obs = torch.cat([quiet.state[:, 0:3], rotation, quiet.state[:, 7:13]], -1).float()
    assert torch.equal(quiet.observe(quiet.state), expected_obs)
    # R(q) rotates body +z into the world as the dynamics' thrust direction does
    rpm = rpm_of(quad.hover_action())
    y = quiet.state[:, :17].clone()
    y[:, 13:17] = rpm
    derivative = quiet.derivative(y, torch.full((8, 4), rpm), torch.zeros(8, 3), torch.zeros(8, 3))
    thrust_direction = (derivative[:, 7:10] - torch.tensor([0, 0, -quad.GRAVITY])) / (quad.GRAVITY)
    assert torch.allclose(thrust_direction, quad.rotation_matrix(quiet.state[:, 3:7])[:, :, 2], atol=1e-4)


def test_same_seed_same_trajectory_and_state_dict_round_trip(tmp_path):
    a, b = Quadrotor(8, seed=5, curriculum_interval=1_000), Quadrotor(8, seed=5, curriculum_interval=1_000)
    a.reset(), b.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        action = torch.rand(8, 4, generator=gen) * 2 - 1
        first, second = a.step(action), b.step(action)
        assert torch.equal(first.obs, second.obs) and torch.equal(first.rewards, second.rewards)
    write_state(tmp_path / "env", a.state_dict())  # through the checkpoint format: safetensors + JSON
    saved = read_state(tmp_path / "env")
    actions = [torch.rand(8, 4, generator=gen) * 2 - 1 for _ in range(150)]
    first = [a.step(action) for action in actions]
    assert any(bool(step.terminated.any()) for step in first)  # the span covers auto-resets
    c = Quadrotor(8, seed=99, curriculum_interval=1_000)
    c.reset()
    c.load_state_dict(saved)
    for before, action in zip(first, actions):
        after = c.step(action)
        assert torch.equal(before.obs, after.obs) and torch.equal(before.rewards, after.rewards)
        assert torch.equal(before.terminated, after.terminated) and torch.equal(before.truncated, after.truncated)
    assert torch.equal(a.state, c.state) and a.env_steps.item() == c.env_steps.item() == 8 * 210
    assert not torch.equal(Quadrotor(8, seed=6).reset(), Quadrotor(8, seed=5).reset())


def test_motor_speeds_join_the_observation_on_request():
    env = Quadrotor(3, seed=0, observe_motors=True, action_history=2)
    env.reset()
    env.state[:, 13:17] = torch.tensor([0.0, quad.MAX_RPM / 4, quad.MAX_RPM / 2, quad.MAX_RPM], dtype=torch.float64)
    obs = env.observe(env.state)
    assert obs.shape == (3, 18 + 4 + 8) == (3, *env.observation_space.shape)
    assert torch.equal(obs[:, 18:22], torch.tensor([[-1.0, -0.5, 0.0, 1.0]] * 3))
    assert torch.equal(obs[:, 22:], torch.zeros(3, 8))


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="action_history"):
        Quadrotor(1, action_history=-1)
    with pytest.raises(ValueError, match="reward_weights"):
        Quadrotor(1, reward_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="reward_weights"):
        Quadrotor(1, reward_weights=[1.0, 2.0, -1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="exclude"):
        Quadrotor(1, reward_weights=[1.0] * 5, target_reward=True)
    with pytest.raises(TypeError, match="privileged = 1 is invalid: must be true or false"):
        Quadrotor(1, privileged=1)


def test_trains_through_the_public_api_with_its_options_and_reads_nothing_on_the_host(tmp_path):
    options = {"curriculum_interval": 128, "observe_motors": True, "action_history": 4, "action_repeat": 2,
               "position_cost": "distance"}
    reads = HostReads()
    with reads:
        dramaturg.train("td3", env="dramaturg/Quadrotor-v0", num_envs=8, total_steps=512, eval_every=0,
                        eval_episodes=1, log_every=10_000, checkpoint_every=0, progress=False, run_dir=str(tmp_path),
                        learning_starts=64, batch_size=32, net_arch=(16, 16), env_kwargs=options)
    assert not reads.sites, f"host reads outside the session's schedule: {sorted(set(reads.sites))[:5]}"
    saved = load_latest(tmp_path / "checkpoints")
    assert saved["env"]["env_steps"].item() == 1024  # the curriculum's clock (simulator steps) travels with the checkpoint
    assert saved["env"]["state"].shape == (8, quad.HISTORY + 16)


def test_privileged_observation_is_the_true_state_disturbances_and_motor_speeds():
    env = Quadrotor(3, seed=0, privileged=True, observe_motors=True, action_history=1)
    env.reset()
    space = env.observation_space
    assert isinstance(space, quad.gym.spaces.Dict) and set(space.spaces) == {"obs", "privileged"}
    assert space["obs"].shape == (18 + 4 + 4,) and space["privileged"].shape == (quad.PRIVILEGED_DIM,)
    half = math.sqrt(0.5)  # a quarter turn about z: body x points along world y
    env.state[:, 0:13] = torch.tensor([0.1, -0.2, 0.3, half, 0.0, 0.0, half, 0.5, 0.6, -0.7, 1.0, -2.0, 3.0])
    env.state[:, 13:17] = torch.tensor([0.0, quad.MAX_RPM / 4, quad.MAX_RPM / 2, quad.MAX_RPM])
    env.state[:, 17:23] = torch.tensor([0.01, -0.02, 0.03, 1e-5, -2e-5, 3e-5])
    obs = env.observe(env.state)
    rotation = [0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # row-major R(q)
    expected = [0.1, -0.2, 0.3, *rotation, 0.5, 0.6, -0.7, 1.0, -2.0, 3.0, 0.01, -0.02, 0.03, 1e-5, -2e-5, 3e-5]
    expected = torch.tensor([expected + [-1.0, -0.5, 0.0, 1.0]] * 3, dtype=torch.float32)
    assert torch.allclose(obs["privileged"], expected, atol=1e-7)  # no sensor noise
    assert torch.equal(obs["obs"], env.observe_actor(env.state))  # the actor's view, noise included
    assert not torch.equal(obs["obs"][:, :18], expected[:, :18])


def test_dict_observations_reset_per_key_and_keep_the_final_one_per_key():
    """A privileged environment steps exactly as the plain one; where an episode ends, each key
    holds the fresh state's observation and final_obs the ended state's."""
    plain, env = Quadrotor(6, seed=3), Quadrotor(6, seed=3, privileged=True)
    assert torch.equal(plain.reset(), env.reset()["obs"])
    gen = torch.Generator().manual_seed(1)
    ended = 0
    for _ in range(80):
        action = torch.rand(6, 4, generator=gen) * 2 - 1
        before = env.state.clone()
        a, b = plain.step(action), env.step(action)
        assert torch.equal(a.obs, b.obs["obs"]) and torch.equal(a.final_obs, b.final_obs["obs"])
        assert torch.equal(a.rewards, b.rewards) and torch.equal(a.terminated, b.terminated)
        next_state = env.integrate(before, action, torch.zeros(6, 18, dtype=torch.float64))  # draws nothing
        done = (b.terminated + b.truncated).bool()
        ended += int(done.sum())
        assert torch.equal(b.obs["privileged"], env.observe_privileged(env.state))  # fresh rows where done
        final = b.final_obs["privileged"]
        assert torch.allclose(final[:, :3].double(), next_state[:, :3], atol=1e-6)  # the ended state where done
        assert torch.equal(final[~done], b.obs["privileged"][~done])
        assert not done.any() or (final[done, :3] - b.obs["privileged"][done, :3]).abs().amax(-1).min() > 0
    assert ended > 0


def test_dict_observations_normalise_per_key_and_restore_exactly(tmp_path):
    from dramaturg.envs.spaces import obs_shape
    from dramaturg.nn.normalize import ObsNormalizer

    def make(seed):
        probe = Quadrotor(1, privileged=True)
        return Quadrotor(4, seed=seed, privileged=True, obs_norm=ObsNormalizer(obs_shape(probe.observation_space)))

    a = make(5)
    a.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        step = a.step(torch.rand(4, 4, generator=gen) * 2 - 1)
    raw = a.observe(a.state)
    for key in ("obs", "privileged"):  # each key by its own running moments
        assert torch.equal(step.obs[key], a.obs_norm.norms[key](raw[key]))
    assert a.obs_norm.norms["privileged"].count.item() == pytest.approx(4 * 31, abs=1e-3)
    write_state(tmp_path / "env", a.state_dict())
    actions = [torch.rand(4, 4, generator=gen) * 2 - 1 for _ in range(150)]
    norm_state = {k: v.clone() for k, v in a.obs_norm.state_dict().items()}
    first = [a.step(action, update_norm=False) for action in actions]
    assert any(bool((s.terminated + s.truncated).any()) for s in first)
    c = make(99)
    c.reset()
    c.obs_norm.load_state_dict(norm_state)
    restored = c.load_state_dict(read_state(tmp_path / "env"))
    assert set(restored) == {"obs", "privileged"}
    for before, action in zip(first, actions):
        after = c.step(action, update_norm=False)
        for key in ("obs", "privileged"):
            assert torch.equal(before.obs[key], after.obs[key]) and torch.equal(before.final_obs[key], after.final_obs[key])
        assert torch.equal(before.rewards, after.rewards)


def test_asymmetric_td3_trains_evaluates_and_flies_with_the_privileged_critic(tmp_path):
    options = {"privileged": True, "observe_motors": True, "action_history": 0}
    result = dramaturg.train("td3", env="dramaturg/Quadrotor-v0", num_envs=8, total_steps=256, eval_every=128,
                             eval_episodes=2, log_every=10_000, checkpoint_every=0, progress=False, run_dir=str(tmp_path),
                             learning_starts=64, batch_size=32, net_arch=(16, 16), env_kwargs=options, actor_keys="obs")
    assert result.policy.actor.net[0].in_features == 18 + 4  # the actor reads the actor's view only
    flight = Quadrotor(4, seed=0, **options).fly(result.policy)
    assert flight.positions.shape == (quad.EPISODE_STEPS + 1, 4, 3)
    plain = Quadrotor(4, seed=0, observe_motors=True, action_history=0).fly(result.policy)  # the view alone, as deployed
    assert torch.equal(torch.nan_to_num(flight.positions), torch.nan_to_num(plain.positions))
    again = dramaturg.train("td3", env="dramaturg/Quadrotor-v0", num_envs=8, total_steps=256, eval_every=128,
                            eval_episodes=2, log_every=10_000, checkpoint_every=0, progress=False,
                            run_dir=str(tmp_path / "again"), learning_starts=64, batch_size=32, net_arch=(16, 16),
                            env_kwargs=options, actor_keys="obs")
    first, second = result.policy.actor.state_dict(), again.policy.actor.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)  # same seed, same policy, bit for bit


def test_td3_activation_builds_the_named_nonlinearity_and_refuses_others():
    from dramaturg.algos import td3
    from dramaturg.config import ConfigError
    from dramaturg.nn.mlp import Tanh

    env = Quadrotor(1, privileged=True)
    for activation, kind in (("relu", torch.nn.ReLU), ("tanh", Tanh)):
        cfg = td3.Config(env="dramaturg/Quadrotor-v0", net_arch=(8, 8), activation=activation, actor_keys="obs")
        state = td3.make(cfg, env.observation_space, env.action_space, torch.device("cpu"))
        assert [type(m) for m in state.actor.net if not isinstance(m, torch.nn.Linear)] == [kind, kind]
        assert isinstance(state.critic.activation, kind) and isinstance(state.critic_target.activation, kind)
    with pytest.raises(ConfigError, match="activation = 'sigmoid' is invalid: must be one of tanh, relu, elu, gelu"):
        td3.Config(env="dramaturg/Quadrotor-v0", activation="sigmoid")


def test_asymmetric_run_stopped_and_resumed_ends_where_the_whole_run_ends(tmp_path):
    """Dict observations through replay, normalisation and checkpoints: resuming is exact."""
    from tests.helpers import assert_resume_is_exact
    from tests.helpers import dramaturg as cli

    argv = ["td3", "--env", "dramaturg/Quadrotor-v0", "--seed", "4", "--num-envs", "8", "--learning-starts", "64",
            "--batch-size", "32", "--net-arch", "16,16", "--actor-keys", "obs", "--normalize-obs",
            "--env-kwargs", '{"privileged": true, "observe_motors": true, "action_history": 2}',
            "--eval-every", "0", "--log-every", "64", "--checkpoint-every", "192", "--progress", "false"]
    whole, _ = assert_resume_is_exact(cli, argv, 384, 192, tmp_path)
    saved = load_latest(whole / "checkpoints")
    assert set(saved["obs_norm"]) >= {"norms.obs.mean", "norms.privileged.mean"}  # one normaliser per key


def test_hover_benchmark_tests_under_the_evaluation_reward_and_flies_the_reference():
    from benchmarks.quadrotor_hover import run_reference, test_kwargs

    trained_with = {"observe_motors": True, "reward_weights": [1, 2, 3, 4, 5], "termination_penalty": -5.0,
                    "curriculum_interval": 0, "position_cost": "distance", "action_repeat": 4}
    assert test_kwargs(trained_with) == {"observe_motors": True, "action_repeat": 4, "target_reward": True}
    row = run_reference(0, 64, 0.9)
    assert row["algo"] == "reference" and row["episodes"] == 64
    assert row["success"] >= 0.85 and row["solved"] == (row["success"] >= 0.9)


@pytest.mark.learning
def test_preset_learns_to_hover_from_nine_in_ten_random_starts(tmp_path):
    """The preset (25 Hz, distance cost, 36,576 updates; about a minute on one core) as the hover
    benchmark runs it, then its test on 256 fresh starts: the benchmark's seed 2 hovered from 97.1%."""
    from benchmarks.quadrotor_hover import ENV, QUIET, test_kwargs
    from dramaturg.presets import preset_for

    result = dramaturg.train("td3", env=ENV, seed=2, run_dir=str(tmp_path), **QUIET)
    env = Quadrotor(256, seed=7, **test_kwargs(preset_for("td3", ENV)["env_kwargs"]))
    flight = env.fly(result.policy)
    assert quad.hover_success(flight.positions[1:]).double().mean().item() >= 0.9
