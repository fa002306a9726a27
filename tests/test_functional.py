"""Golden values for the pure tensor maths in dramaturg.functional.

Every expected value below is worked out by hand (unrolled arithmetic on literal numbers), never by
re-running the recursion the code implements. Tensors are time-major [T, B]; `tm(col0, col1)` builds
a [T, 2] tensor from the per-environment columns so each case reads as two short episodes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dramaturg.functional import explained_variance, gae, n_step_returns, polyak_, update_moments

F64 = torch.float64


def tm(*cols) -> torch.Tensor:
    """[T, B] from B columns of length T."""
    return torch.tensor(list(zip(*cols)), dtype=F64)


def close(actual, expected, atol=1e-12):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), rtol=0, atol=atol)


# ------------------------------------------------------------------------------------------------
# GAE, gamma = 0.9, lam = 0.8, so gamma * lam = 0.72. T = 3, B = 2.
#   env 0: r = [1, 2, 3],     V = [0.5, 1.0, 1.5]
#   env 1: r = [0, -1, 0.5],  V = [0.2, -0.3, 0.4]
# ------------------------------------------------------------------------------------------------
G, LAM = 0.9, 0.8
R = tm([1.0, 2.0, 3.0], [0.0, -1.0, 0.5])
V = tm([0.5, 1.0, 1.5], [0.2, -0.3, 0.4])
ZERO = torch.zeros(3, 2, dtype=F64)


def test_gae_no_episode_end():
    # next_values[t] = V[t+1]; the last step bootstraps from V(s_3) = 2.0 (env 0) and 0.0 (env 1).
    nv = tm([1.0, 1.5, 2.0], [-0.3, 0.4, 0.0])
    adv = gae(R, V, nv, ZERO, ZERO, gamma=G, lam=LAM)
    # env 0: deltas 1 + .9*1 - .5 = 1.4,  2 + .9*1.5 - 1 = 2.35,  3 + .9*2 - 1.5 = 3.3
    #   A2 = 3.3;  A1 = 2.35 + .72*3.3 = 4.726;  A0 = 1.4 + .72*4.726 = 4.80272
    # env 1: deltas 0 + .9*-.3 - .2 = -.47,  -1 + .9*.4 + .3 = -.34,  .5 + 0 - .4 = .1
    #   A2 = .1;   A1 = -.34 + .72*.1 = -.268;  A0 = -.47 + .72*-.268 = -.66296
    close(adv, tm([4.80272, 4.726, 3.3], [-0.66296, -0.268, 0.1]))


def test_gae_termination_in_the_middle():
    # env 0 terminates at t=1: next_values[1] = 99 is V of a terminal state and must be ignored,
    # and A0 must not see the new episode that starts at t=2.
    # env 1 terminates at t=0 (next_values[0] = 7 ignored).
    nv = tm([1.0, 99.0, 2.0], [7.0, 0.4, 0.0])
    term = tm([0, 1, 0], [1, 0, 0])
    adv = gae(R, V, nv, term, term, gamma=G, lam=LAM)
    # env 0: deltas 1.4,  2 - 1 = 1.0 (no bootstrap),  3.3
    #   A2 = 3.3;  A1 = 1.0 (recursion cut);  A0 = 1.4 + .72*1.0 = 2.12
    # env 1: deltas 0 - .2 = -.2 (no bootstrap), -.34, .1
    #   A2 = .1;  A1 = -.268;  A0 = -.2 (recursion cut)
    close(adv, tm([2.12, 1.0, 3.3], [-0.2, -0.268, 0.1]))


def test_gae_truncation_bootstraps_but_cuts_recursion():
    # env 0 truncated at t=1: next_values[1] = V(final obs) = 0.7 IS bootstrapped, but A1 does not
    # carry A2 (which belongs to the next episode).
    # env 1 truncated at the last step: next_values[2] = V(final obs) = 0.6 is bootstrapped.
    nv = tm([1.0, 0.7, 2.0], [-0.3, 0.4, 0.6])
    dones = tm([0, 1, 0], [0, 0, 1])
    adv = gae(R, V, nv, ZERO, dones, gamma=G, lam=LAM)
    # env 0: deltas 1.4,  2 + .9*.7 - 1 = 1.63,  3.3
    #   A2 = 3.3;  A1 = 1.63;  A0 = 1.4 + .72*1.63 = 2.5736
    # env 1: deltas -.47, -.34,  .5 + .9*.6 - .4 = .64
    #   A2 = .64;  A1 = -.34 + .72*.64 = .1208;  A0 = -.47 + .72*.1208 = -.383024
    close(adv, tm([2.5736, 1.63, 3.3], [-0.383024, 0.1208, 0.64]))


def test_gae_lambda_one_is_monte_carlo_minus_value():
    # env 0: no end, final bootstrap V(s_3) = 2.0. env 1: terminates at t=1 (next_values[1] = 9 ignored).
    nv = tm([1.0, 1.5, 2.0], [-0.3, 9.0, 0.0])
    term = tm([0, 0, 0], [0, 1, 0])
    adv = gae(R, V, nv, term, term, gamma=G, lam=1.0)
    expected = tm(
        [
            1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 2.0 - 0.5,  # 6.188
            2 + 0.9 * 3 + 0.81 * 2.0 - 1.0,  # 5.32
            3 + 0.9 * 2.0 - 1.5,  # 3.3
        ],
        [
            0 + 0.9 * -1 - 0.2,  # episode ends after t=1: -1.1
            -1 - (-0.3),  # -0.7
            0.5 + 0.9 * 0.0 - 0.4,  # 0.1
        ],
    )
    close(adv, expected)


def test_gae_lambda_zero_is_one_step_td_error():
    nv = tm([1.0, 99.0, 2.0], [7.0, 0.4, 0.0])
    term = tm([0, 1, 0], [1, 0, 0])
    adv = gae(R, V, nv, term, term, gamma=G, lam=0.0)
    # delta_t = r_t + gamma (1 - term_t) next_values_t - V_t, no carry at all
    close(adv, tm([1.4, 1.0, 3.3], [-0.2, -0.34, 0.1]))


def test_gae_shape_and_dtype():
    adv = gae(R.float(), V.float(), V.float(), ZERO.float(), ZERO.float(), gamma=G, lam=LAM)
    assert adv.shape == (3, 2) and adv.dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# n-step returns, gamma = 0.9, T = 4, B = 2.
#   env 0: r = [1, 2, 3, 4],     next_values = [5, 6, 7, 8]
#   env 1: r = [0.5, -1, 2, 1],  next_values = [2, 3, 100, 4]
# ------------------------------------------------------------------------------------------------
NR = tm([1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 1.0])
NNV = tm([5.0, 6.0, 7.0, 8.0], [2.0, 3.0, 100.0, 4.0])
NZ = torch.zeros(4, 2, dtype=F64)
# env 0 truncated at t=1 (V(final obs) = 6 is bootstrapped); env 1 terminated at t=2 (100 ignored)
NTERM = tm([0, 0, 0, 0], [0, 0, 1, 0])
NDONE = tm([0, 1, 0, 0], [0, 0, 1, 0])


def test_n_step_one_is_one_step_target():
    out = n_step_returns(NR, NNV, NZ, NZ, gamma=G, n=1)
    # r_t + .9 * next_values_t
    close(out, tm([1 + 4.5, 2 + 5.4, 3 + 6.3, 4 + 7.2], [0.5 + 1.8, -1 + 2.7, 2 + 90.0, 1 + 3.6]))


def test_n_step_one_with_episode_ends():
    out = n_step_returns(NR, NNV, NTERM, NDONE, gamma=G, n=1)
    # truncation still bootstraps (env 0, t=1: 2 + .9*6); termination does not (env 1, t=2: 2)
    close(out, tm([5.5, 7.4, 9.3, 11.2], [2.3, 1.7, 2.0, 4.6]))


def test_n_step_two():
    out = n_step_returns(NR, NNV, NZ, NZ, gamma=G, n=2)
    expected = tm(
        [
            1 + 0.9 * 2 + 0.81 * 6,  # 7.66
            2 + 0.9 * 3 + 0.81 * 7,  # 10.37
            3 + 0.9 * 4 + 0.81 * 8,  # 13.08
            4 + 0.9 * 8,  # end of rollout: one step only, 11.2
        ],
        [
            0.5 + 0.9 * -1 + 0.81 * 3,  # 2.03
            -1 + 0.9 * 2 + 0.81 * 100,  # 81.8
            2 + 0.9 * 1 + 0.81 * 4,  # 6.14
            1 + 0.9 * 4,  # 4.6
        ],
    )
    close(out, expected)


@pytest.mark.parametrize("n", [4, 10])
def test_n_step_whole_rollout(n):
    out = n_step_returns(NR, NNV, NZ, NZ, gamma=G, n=n)
    expected = tm(
        [
            1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 4 + 0.6561 * 8,  # 13.3948
            2 + 0.9 * 3 + 0.81 * 4 + 0.729 * 8,  # 13.772
            3 + 0.9 * 4 + 0.81 * 8,  # 13.08
            4 + 0.9 * 8,  # 11.2
        ],
        [
            0.5 + 0.9 * -1 + 0.81 * 2 + 0.729 * 1 + 0.6561 * 4,  # 4.5734
            -1 + 0.9 * 2 + 0.81 * 1 + 0.729 * 4,  # 4.526
            2 + 0.9 * 1 + 0.81 * 4,  # 6.14
            1 + 0.9 * 4,  # 4.6
        ],
    )
    close(out, expected)


def test_n_step_episode_ends_inside_window():
    out = n_step_returns(NR, NNV, NTERM, NDONE, gamma=G, n=3)
    expected = tm(
        [
            1 + 0.9 * 2 + 0.81 * 6,  # truncated at t=1: bootstrap from V(final obs) = 6 -> 7.66
            2 + 0.9 * 6,  # 7.4
            3 + 0.9 * 4 + 0.81 * 8,  # window cut by the end of the rollout -> 13.08
            4 + 0.9 * 8,  # 11.2
        ],
        [
            0.5 + 0.9 * -1 + 0.81 * 2,  # terminated at t=2: no bootstrap -> 1.22
            -1 + 0.9 * 2,  # 0.8
            2.0,  # 2
            1 + 0.9 * 4,  # new episode, end of rollout -> 4.6
        ],
    )
    close(out, expected)


# ------------------------------------------------------------------------------------------------
# Running moments, explained variance, Polyak averaging
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_update_moments_chunks_match_numpy(backend):
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[3.0, -2.0, 0.5], scale=[0.1, 5.0, 2.0], size=(51, 3))
    if backend == "torch":
        mean, var, count = torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), torch.tensor(0.0, dtype=F64)
        to = torch.from_numpy
    else:
        mean, var, count = np.zeros(3), np.zeros(3), 0.0
        to = np.asarray
    start = 0
    for size in [7, 1, 13, 30]:
        mean, var, count = update_moments(mean, var, count, to(data[start : start + size]))
        start += size
    assert start == len(data)
    np.testing.assert_allclose(np.asarray(mean), data.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(var), data.var(0), rtol=1e-12, atol=0)
    assert float(count) == 51


def test_update_moments_from_prior_state():
    # prior of 4 samples {0, 2, 4, 6}: mean 3, population var 5, then merge {10, 12}
    # all six: mean 34/6, var = mean(x^2) - mean^2 = (0+4+16+36+100+144)/6 - (34/6)^2
    mean, var, count = update_moments(
        torch.tensor([3.0], dtype=F64), torch.tensor([5.0], dtype=F64), torch.tensor(4.0, dtype=F64),
        torch.tensor([[10.0], [12.0]], dtype=torch.float32),
    )
    close(mean, [34 / 6])
    close(var, [300 / 6 - (34 / 6) ** 2])
    close(count, 6.0)


def test_explained_variance():
    target = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    close(explained_variance(target.clone(), target), 1.0)
    close(explained_variance(torch.full_like(target, 2.5), target), 0.0)
    # residual [0, 0, 0, -1]: var 0.75/3 = 0.25; var(target) = 5/3 -> 1 - 0.25 / (5/3) = 0.85
    close(explained_variance(torch.tensor([1.0, 2.0, 3.0, 5.0], dtype=F64), target), 0.85)
    # constant target: defined as 0, not nan
    ev = explained_variance(torch.tensor([0.0, 1.0, 2.0], dtype=F64), torch.full((3,), 7.0, dtype=F64))
    assert torch.isfinite(ev) and ev.item() == 0.0


@pytest.mark.parametrize(
    "tau, expected",
    [
        (1.0, ([5.0, -2.0], [[4.0]])),
        (0.0, ([1.0, 2.0], [[0.0]])),
        (0.5, ([3.0, 0.0], [[2.0]])),  # (1 + 5)/2, (2 - 2)/2, (0 + 4)/2
    ],
)
def test_polyak(tau, expected):
    target = [torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([[0.0]], dtype=F64)]
    online = [torch.tensor([5.0, -2.0], dtype=F64), torch.tensor([[4.0]], dtype=F64)]
    ids = [id(t) for t in target]
    polyak_(target, online, tau)
    assert [id(t) for t in target] == ids  # in place
    for got, want in zip(target, expected):
        close(got, want)
    close(online[0], [5.0, -2.0])  # online untouched
    close(online[1], [[4.0]])


def test_polyak_on_parameters_does_not_track_grad():
    target = torch.nn.Parameter(torch.zeros(3, dtype=F64))
    online = torch.nn.Parameter(torch.ones(3, dtype=F64))
    polyak_([target], [online], 0.25)
    close(target.detach(), [0.25, 0.25, 0.25])
    assert target.grad_fn is None and target.is_leaf
    assert math.isclose(online.detach().sum().item(), 3.0)
