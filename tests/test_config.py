"""Run configuration: every validation rule, CLI value parsing, field docs, preset resolution, and
the command line refusing bad input before any environment is built or stepped."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import pytest

from dramaturg import algos, api, cli
from dramaturg.algos import a2c, ppo, sac, td3
from dramaturg.config import (
    ConfigError,
    RunConfig,
    field_docs,
    field_types,
    from_dict,
    parse_value,
    to_dict,
)

ALGOS = {"ppo": ppo, "a2c": a2c, "sac": sac, "td3": td3}
# Every config class and the name its errors start with.
OWNERS = {"RunConfig": RunConfig, **{name: module.Config for name, module in ALGOS.items()}}

INF, NAN = math.inf, math.nan


def case(owner: str, field: str, allowed: str, shown: Any = dataclasses.MISSING, **overrides: Any):
    """A bad configuration: `overrides` make `owner`'s config invalid; the error must name `field`,
    show `shown` (default: the override of `field`) by repr and say `allowed`."""
    if not overrides:
        overrides = {field: shown}
    if shown is dataclasses.MISSING:
        shown = overrides[field]
    label = ",".join(f"{k}={v!r}" for k, v in overrides.items())
    return pytest.param(owner, overrides, field, shown, allowed, id=f"{owner}-{label}")


# -- rules of RunConfig, applied to RunConfig itself and inherited by every algorithm -----------

RUN_RULES: list[tuple[str, dict[str, Any], Any, str]] = [
    # (field, overrides, shown value, allowed text)
    ("env", {"env": ""}, "", "must name an environment"),
    ("env", {"env": "   "}, "   ", "must name an environment"),
    ("env", {"env": 5}, 5, "must be of type str"),
    ("env_kwargs", {"env_kwargs": "a=1"}, "a=1", "must be of type dict"),
    ("seed", {"seed": -1}, -1, "must be >= 0"),
    ("seed", {"seed": True}, True, "must be of type int"),
    ("seed", {"seed": 1.5}, 1.5, "must be of type int"),
    ("total_steps", {"total_steps": 0}, 0, "must be > 0"),
    ("total_steps", {"total_steps": -100}, -100, "must be > 0"),
    ("total_steps", {"total_steps": "100"}, "100", "must be of type int"),
    ("num_envs", {"num_envs": 0}, 0, "must be > 0"),
    ("num_envs", {"num_envs": False}, False, "must be of type int"),
    ("vector_env", {"vector_env": "thread"}, "thread", "must be one of sync, async"),
    ("device", {"device": "tpu"}, "tpu", "must be auto, cpu, cuda or cuda:N"),
    ("device", {"device": ""}, "", "must be auto, cpu, cuda or cuda:N"),
    ("run_dir", {"run_dir": 5}, 5, "must be of type str | None"),
    ("eval_every", {"eval_every": -1}, -1, "must be >= 0"),
    ("eval_episodes", {"eval_episodes": 0}, 0, "must be > 0"),
    ("checkpoint_every", {"checkpoint_every": -1}, -1, "must be >= 0"),
    ("stop_at_return", {"stop_at_return": 195.0, "eval_every": 0}, None, "must be > 0 when stop_at_return is set"),
    ("stop_at_return", {"stop_at_return": INF}, INF, "must be finite"),
    ("stop_at_return", {"stop_at_return": -INF}, -INF, "must be finite"),
    ("stop_at_return", {"stop_at_return": NAN}, NAN, "must be finite"),
    ("stop_at_return", {"stop_at_return": "195"}, "195", "must be of type float | None"),
    ("normalize_obs", {"normalize_obs": 1}, 1, "must be of type bool"),
    ("normalize_reward", {"normalize_reward": "false"}, "false", "must be of type bool"),
    ("log_every", {"log_every": 0}, 0, "must be > 0"),
    ("progress", {"progress": None}, None, "must be of type bool"),
    ("torch_threads", {"torch_threads": -2}, -2, "must be >= 0"),
]


def run_rule_cases():
    for owner in OWNERS:
        for field, overrides, shown, allowed in RUN_RULES:
            if field == "stop_at_return" and "eval_every" in overrides:
                # the rule names eval_every, whose value 0 is the one refused
                yield case(owner, "eval_every", allowed, 0, **overrides)
            else:
                yield case(owner, field, allowed, shown, **overrides)


# -- rules of each algorithm's Config -----------------------------------------------------------

ALGO_CASES = [
    # ppo
    case("ppo", "learning_rate", "must be > 0", learning_rate=0.0),
    case("ppo", "policy", "must be one of gaussian, gmm", policy="mixture"),
    case("ppo", "components", "must be >= 1", components=0),
    case("ppo", "learning_rate", "must be > 0", learning_rate=-3e-4),
    case("ppo", "learning_rate", "must be > 0", learning_rate=NAN),
    case("ppo", "learning_rate", "must be of type float", learning_rate="abc"),
    case("ppo", "learning_rate", "must be of type float", learning_rate=True),
    case("ppo", "n_steps", "must be > 0", n_steps=0),
    case("ppo", "n_steps", "must be of type int", n_steps=2048.0),
    case("ppo", "batch_size", "must be > 0", batch_size=0),
    case("ppo", "n_epochs", "must be > 0", n_epochs=0),
    case("ppo", "n_epochs", "must be of type int", n_epochs=True),
    case("ppo", "clip_range", "must be > 0", clip_range=0.0),
    case("ppo", "max_grad_norm", "must be > 0", max_grad_norm=-0.5),
    case("ppo", "gamma", "must be in [0, 1]", gamma=1.01),
    case("ppo", "gamma", "must be in [0, 1]", gamma=-0.1),
    case("ppo", "gamma", "must be in [0, 1]", shown=2.0, gamma=2),
    case("ppo", "gae_lambda", "must be in [0, 1]", gae_lambda=1.5),
    case("ppo", "gae_lambda", "must be in [0, 1]", gae_lambda=-0.01),
    case("ppo", "ent_coef", "must be >= 0", ent_coef=-0.01),
    case("ppo", "vf_coef", "must be >= 0", vf_coef=-1.0),
    case("ppo", "lr_schedule", "must be one of constant, linear", lr_schedule="cosine"),
    case("ppo", "clip_range_schedule", "must be one of constant, linear", clip_range_schedule="exp"),
    case("ppo", "activation", "must be one of tanh, relu, elu, gelu", activation="sigmoid"),
    case("ppo", "activation", "must be one of tanh, relu, elu, gelu", activation="ReLU"),
    case("ppo", "clip_range_vf", "must be > 0", clip_range_vf=0.0),
    case("ppo", "clip_range_vf", "must be > 0", clip_range_vf=-0.2),
    case("ppo", "target_kl", "must be > 0", target_kl=0.0),
    case("ppo", "target_kl", "must be of type float | None", target_kl="0.01"),
    case("ppo", "batch_size", "must be >= 2 (with num_envs * n_steps >= 2) when normalize_advantage is on", batch_size=1),
    case(
        "ppo", "batch_size", "must be >= 2 (with num_envs * n_steps >= 2) when normalize_advantage is on",
        shown=64, n_steps=1, num_envs=1,
    ),
    case("ppo", "normalize_advantage", "must be of type bool", normalize_advantage="yes"),
    case("ppo", "net_arch", "must be of type tuple[int, ...]", net_arch=(64, "x")),
    case("ppo", "net_arch", "must be of type tuple[int, ...]", net_arch=(64, 64.0)),
    case("ppo", "net_arch", "must be of type tuple[int, ...]", net_arch=(64, True)),
    case("ppo", "net_arch", "must be of type tuple[int, ...]", net_arch="64,64"),
    case("ppo", "net_arch", "must be of type tuple[int, ...]", net_arch=64),
    case("ppo", "critic_arch", "must be of type tuple[int, ...] | None", critic_arch=("a",)),
    case("ppo", "ortho_init", "must be of type bool", ortho_init="true"),
    case("ppo", "actor_keys", "must be empty (every key) or name at least one key", actor_keys="obs,"),
    case("sac", "actor_keys", "names a key twice", actor_keys="obs,obs"),
    case("td3", "actor_keys", "must be empty (every key) or name at least one key", actor_keys=" "),
    case("ppo", "reward_components", "must be >= 0", reward_components=-1),
    case("ppo", "reward_weights", "must have one weight per reward component", reward_weights="1"),
    case("sac", "reward_components", "must be >= 0", reward_components=-1),
    case("sac", "reward_weights", "must have one weight per reward component", reward_weights="1,2"),
    case("ppo", "log_std_init", "must be of type float", log_std_init=None),
    # a2c
    case("a2c", "learning_rate", "must be > 0", learning_rate=0.0),
    case("a2c", "learning_rate", "must be of type float", learning_rate="abc"),
    case("a2c", "n_steps", "must be > 0", n_steps=0),
    case("a2c", "max_grad_norm", "must be > 0", max_grad_norm=0.0),
    case("a2c", "rms_prop_eps", "must be > 0", rms_prop_eps=0.0),
    case("a2c", "gamma", "must be in [0, 1]", gamma=1.5),
    case("a2c", "gae_lambda", "must be in [0, 1]", gae_lambda=1.01),
    case("a2c", "ent_coef", "must be >= 0", ent_coef=-1.0),
    case("a2c", "vf_coef", "must be >= 0", vf_coef=-0.5),
    case("a2c", "lr_schedule", "must be one of constant, linear", lr_schedule="step"),
    case("a2c", "optimizer", "must be one of rmsprop, adam", optimizer="sgd"),
    case("a2c", "activation", "must be one of tanh, relu, elu, gelu", activation="swish"),
    case(
        "a2c", "normalize_advantage", "needs num_envs * n_steps >= 2", shown=True,
        normalize_advantage=True, n_steps=1, num_envs=1,
    ),
    case("a2c", "net_arch", "must be of type tuple[int, ...]", net_arch=(64, "x")),
    case("a2c", "ortho_init", "must be of type bool", ortho_init=0),
    # sac
    case("sac", "learning_rate", "must be > 0", learning_rate=0.0),
    case("sac", "policy", "must be one of gaussian, gmm", policy="mixture"),
    case("sac", "components", "must be >= 1", components=0),
    case("sac", "learning_rate", "must be of type float", learning_rate="abc"),
    case("sac", "buffer_size", "must be > 0", buffer_size=0),
    case("sac", "batch_size", "must be > 0", batch_size=0),
    case("sac", "train_freq", "must be > 0", train_freq=0),
    case("sac", "gradient_steps", "must be > 0", gradient_steps=0),
    case("sac", "ent_coef_init", "must be > 0", ent_coef_init=0.0),
    case("sac", "n_critics", "must be > 0", n_critics=0),
    case("sac", "gamma", "must be in [0, 1]", gamma=-0.5),
    case("sac", "tau", "must be in (0, 1]", tau=0.0),
    case("sac", "tau", "must be in (0, 1]", tau=1.5),
    case("sac", "tau", "must be in (0, 1]", tau=-0.005),
    case("sac", "learning_starts", "must be >= 0", learning_starts=-1),
    case("sac", "batch_size", "must be <= buffer_size (256)", shown=512, batch_size=512, buffer_size=256),
    case("sac", "num_envs", "must be <= buffer_size (4)", shown=8, num_envs=8, buffer_size=4, batch_size=4),
    case("sac", "autotune_entropy", "must be of type bool", autotune_entropy="auto"),
    case("sac", "target_entropy", "must be of type float | None", target_entropy="auto"),
    case("sac", "net_arch", "must be of type tuple[int, ...]", net_arch=(256, None)),
    case("sac", "buffer_size", "must be of type int", buffer_size=1e6),
    # td3
    case("td3", "learning_rate", "must be > 0", learning_rate=-1e-3),
    case("td3", "learning_rate", "must be of type float", learning_rate="abc"),
    case("td3", "buffer_size", "must be > 0", buffer_size=0),
    case("td3", "batch_size", "must be > 0", batch_size=0),
    case("td3", "train_freq", "must be > 0", train_freq=0),
    case("td3", "gradient_steps", "must be > 0", gradient_steps=0),
    case("td3", "policy_delay", "must be > 0", policy_delay=0),
    case("td3", "policy_delay", "must be of type int", policy_delay=2.0),
    case("td3", "learning_starts", "must be >= 0", learning_starts=-1),
    case("td3", "target_policy_noise", "must be >= 0", target_policy_noise=-0.1),
    case("td3", "target_noise_clip", "must be >= 0", target_noise_clip=-0.5),
    case("td3", "exploration_noise", "must be >= 0", exploration_noise=-0.1),
    case("td3", "activation", "must be one of tanh, relu, elu, gelu", activation="sigmoid"),
    case("td3", "gamma", "must be in [0, 1]", gamma=1.1),
    case("td3", "tau", "must be in (0, 1]", tau=0.0),
    case("td3", "tau", "must be in (0, 1]", tau=2.0),
    case("td3", "batch_size", "must be <= buffer_size (100)", shown=256, buffer_size=100),
    case("td3", "num_envs", "must be <= buffer_size (2)", shown=3, num_envs=3, buffer_size=2, batch_size=2),
    case("td3", "net_arch", "must be of type tuple[int, ...]", net_arch=(400, "300")),
]


def assert_rejected(owner: str, overrides: dict[str, Any], field: str, shown: Any, allowed: str) -> str:
    with pytest.raises(ConfigError) as info:
        OWNERS[owner](**overrides)
    message = str(info.value)
    assert message.startswith(f"{owner}: "), message
    assert f"{field} = {shown!r}" in message, message
    assert allowed in message, message
    assert isinstance(info.value, ValueError)
    return message


@pytest.mark.parametrize("owner, overrides, field, shown, allowed", list(run_rule_cases()))
def test_run_config_rule_rejects_bad_value(owner, overrides, field, shown, allowed):
    assert_rejected(owner, overrides, field, shown, allowed)


@pytest.mark.parametrize("owner, overrides, field, shown, allowed", ALGO_CASES)
def test_algorithm_rule_rejects_bad_value(owner, overrides, field, shown, allowed):
    assert_rejected(owner, overrides, field, shown, allowed)


def test_enough_distinct_bad_configurations():
    algo_specific = {(c.values[0], repr(c.values[1])) for c in ALGO_CASES}
    assert len(algo_specific) >= 40
    # every rule-bearing field of every algorithm is exercised by at least one bad value
    covered = {(c.values[0], c.values[2]) for c in ALGO_CASES}
    for algo, module in ALGOS.items():
        own = {f.name for f in dataclasses.fields(module.Config)} - {f.name for f in dataclasses.fields(RunConfig)}
        missing = {name for name in own if (algo, name) not in covered}
        # fields whose every value of the right type is valid (no rule to break but their type)
        unconstrained = {
            "log_std_init", "target_entropy", "critic_arch", "normalize_advantage", "autotune_entropy",
            "normalize_components", "shared_critic_trunk",
        }
        assert missing <= unconstrained, (algo, missing)


# -- values at the edges of the allowed ranges are accepted --------------------------------------

VALID_EDGES = [
    ("RunConfig", {"seed": 0, "eval_every": 0, "checkpoint_every": 0, "torch_threads": 0}),
    ("RunConfig", {"total_steps": 1, "num_envs": 1, "eval_episodes": 1, "log_every": 1}),
    ("RunConfig", {"stop_at_return": -500.0, "eval_every": 1}),
    ("RunConfig", {"vector_env": "async", "device": "cpu"}),
    ("RunConfig", {"device": "cuda"}),
    ("RunConfig", {"device": "cuda:1"}),
    ("RunConfig", {"env": "dramaturg.envs.native:Thing", "env_kwargs": {"size": 3}, "run_dir": "somewhere"}),
    ("ppo", {"gamma": 0.0, "gae_lambda": 0.0, "ent_coef": 0.0, "vf_coef": 0.0}),
    ("ppo", {"gamma": 1.0, "gae_lambda": 1.0, "lr_schedule": "linear", "clip_range_schedule": "linear"}),
    ("ppo", {"normalize_advantage": False, "batch_size": 1, "n_steps": 1}),
    ("ppo", {"batch_size": 2, "n_steps": 1, "num_envs": 2}),
    ("ppo", {"clip_range_vf": 0.2, "target_kl": 0.01, "critic_arch": (32,), "activation": "gelu"}),
    ("ppo", {"net_arch": (), "log_std_init": -2.0}),
    ("a2c", {"normalize_advantage": True, "n_steps": 1, "num_envs": 2, "optimizer": "adam"}),
    ("a2c", {"normalize_advantage": False, "n_steps": 1, "num_envs": 1, "activation": "elu"}),
    ("sac", {"tau": 1.0, "gamma": 0.0, "learning_starts": 0, "batch_size": 8, "buffer_size": 8, "num_envs": 8}),
    ("sac", {"target_entropy": -3.0, "autotune_entropy": False, "n_critics": 1}),
    ("td3", {"tau": 1.0, "gamma": 1.0, "learning_starts": 0, "batch_size": 4, "buffer_size": 4, "num_envs": 4}),
    ("td3", {"target_policy_noise": 0.0, "target_noise_clip": 0.0, "exploration_noise": 0.0}),
]


@pytest.mark.parametrize("owner, overrides", VALID_EDGES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(VALID_EDGES)])
def test_values_at_the_edges_are_accepted(owner, overrides):
    cfg = OWNERS[owner](**overrides)
    for key, value in overrides.items():
        assert getattr(cfg, key) == value


# -- defaults, coercion, round trips -------------------------------------------------------------


@pytest.mark.parametrize("owner", list(OWNERS))
def test_default_config_constructs(owner):
    cls = OWNERS[owner]
    cfg = cls()
    assert dataclasses.is_dataclass(cfg)
    for name, tp in field_types(cls).items():
        value = getattr(cfg, name)
        assert not isinstance(value, list), name
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]


def test_algorithm_defaults_are_sb3_defaults():
    assert (ppo.Config().learning_rate, ppo.Config().n_steps, ppo.Config().batch_size) == (3e-4, 2048, 64)
    assert (a2c.Config().learning_rate, a2c.Config().n_steps, a2c.Config().optimizer) == (7e-4, 5, "rmsprop")
    assert (sac.Config().buffer_size, sac.Config().batch_size, sac.Config().tau) == (1_000_000, 256, 0.005)
    assert (td3.Config().learning_rate, td3.Config().policy_delay, td3.Config().net_arch) == (1e-3, 2, (400, 300))


def float_fields(cls: type) -> list[str]:
    return [name for name, tp in field_types(cls).items() if float in getattr(tp, "__args__", (tp,)) or tp is float]


def tuple_fields(cls: type) -> list[str]:
    return [name for name in field_types(cls) if "tuple" in str(field_types(cls)[name])]


@pytest.mark.parametrize("owner", list(OWNERS))
def test_ints_for_float_fields_become_floats(owner):
    cls = OWNERS[owner]
    names = float_fields(cls)
    assert "stop_at_return" in names
    if owner != "RunConfig":
        assert {"learning_rate", "gamma"} <= set(names)
    cfg = cls(**{name: 1 for name in names})
    for name in names:
        value = getattr(cfg, name)
        assert type(value) is float and value == 1.0, (name, value)


@pytest.mark.parametrize("owner", list(ALGOS))
def test_lists_for_tuple_fields_become_tuples(owner):
    cls = OWNERS[owner]
    names = tuple_fields(cls)
    assert "net_arch" in names
    cfg = cls(**{name: [8, 16] for name in names})
    for name in names:
        assert getattr(cfg, name) == (8, 16) and type(getattr(cfg, name)) is tuple, name
    # and the config stays hashable-by-value / comparable to one built from tuples
    assert cfg == cls(**{name: (8, 16) for name in names})


@pytest.mark.parametrize("owner", list(OWNERS))
def test_to_dict_from_dict_round_trip(owner):
    cls = OWNERS[owner]
    cfg = cls(seed=7, env_kwargs={"a": 1}, stop_at_return=10.0)
    record = json.loads(json.dumps(to_dict(cfg)))  # as config.json stores it: tuples become lists
    assert from_dict(cls, record) == cfg


# -- from_dict ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", list(ALGOS))
def test_from_dict_unknown_field_suggests_close_match(algo):
    with pytest.raises(ConfigError) as info:
        from_dict(ALGOS[algo].Config, {"seed": 1, "learning_rat": 0.1})
    message = str(info.value)
    assert message.startswith(f"{algo}: unknown field 'learning_rat'"), message
    assert "did you mean" in message and "learning_rate" in message, message


def test_from_dict_unknown_field_without_close_match_and_on_run_config():
    with pytest.raises(ConfigError) as info:
        from_dict(ppo.Config, {"zzzzzz": 1})
    assert "unknown field 'zzzzzz'" in str(info.value) and "did you mean" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^RunConfig: unknown field 'sed' \(did you mean seed\?\)"):
        from_dict(RunConfig, {"sed": 1})
    # a field of another algorithm is unknown here
    with pytest.raises(ConfigError, match=r"^sac: unknown field 'n_epochs'"):
        from_dict(sac.Config, {"n_epochs": 3})


def test_from_dict_validates_values():
    assert from_dict(td3.Config, {"tau": 0.01, "net_arch": [32, 32]}) == td3.Config(tau=0.01, net_arch=(32, 32))
    with pytest.raises(ConfigError, match=r"td3: tau = 0\.0 is invalid: must be in \(0, 1\]"):
        from_dict(td3.Config, {"tau": 0.0})


# -- parse_value ----------------------------------------------------------------------------------

PARSE_OK = [
    ("ppo", "normalize_obs", "true", True),
    ("ppo", "normalize_obs", "false", False),
    ("ppo", "normalize_obs", "1", True),
    ("ppo", "normalize_obs", "0", False),
    ("ppo", "normalize_obs", "True", True),
    ("ppo", "progress", "FALSE", False),
    ("sac", "autotune_entropy", "true", True),
    ("ppo", "stop_at_return", "none", None),
    ("ppo", "stop_at_return", "None", None),
    ("ppo", "stop_at_return", "null", None),
    ("ppo", "stop_at_return", "195.5", 195.5),
    ("ppo", "clip_range_vf", "none", None),
    ("ppo", "target_kl", "0.01", 0.01),
    ("ppo", "critic_arch", "None", None),
    ("ppo", "critic_arch", "32,32", (32, 32)),
    ("ppo", "run_dir", "none", None),
    ("ppo", "run_dir", "runs/x", "runs/x"),
    ("sac", "target_entropy", "none", None),
    ("sac", "target_entropy", "-2", -2.0),
    ("ppo", "net_arch", "64,64", (64, 64)),
    ("ppo", "net_arch", "[64, 64]", (64, 64)),
    ("ppo", "net_arch", " 64, 128 ", (64, 128)),
    ("ppo", "net_arch", "32", (32,)),
    ("td3", "net_arch", "[400,300]", (400, 300)),
    ("ppo", "env_kwargs", '{"render_mode": null, "sutton_barto_reward": true}', {"render_mode": None, "sutton_barto_reward": True}),
    ("ppo", "env_kwargs", "{}", {}),
    ("ppo", "learning_rate", "1e-3", 1e-3),
    ("ppo", "gamma", " 0.5 ", 0.5),
    ("ppo", "seed", "3", 3),
    ("ppo", "seed", "-1", -1),  # parsing keeps it; validation refuses it
    ("a2c", "optimizer", "adam", "adam"),
    ("ppo", "env", "CartPole-v1", "CartPole-v1"),
]


@pytest.mark.parametrize("algo, name, text, expected", PARSE_OK, ids=[f"{a}-{n}-{t!r}" for a, n, t, _ in PARSE_OK])
def test_parse_value_converts(algo, name, text, expected):
    value = parse_value(ALGOS[algo].Config, name, text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_value_float_field_from_int_text_is_a_float():
    value = parse_value(ppo.Config, "learning_rate", "1")
    assert value == 1.0 and type(value) is float


PARSE_BAD = [
    ("ppo", "normalize_obs", "maybe", "must be of type bool"),
    ("ppo", "normalize_obs", "2", "must be of type bool"),
    ("ppo", "normalize_obs", "none", "must be of type bool"),
    ("ppo", "learning_rate", "abc", "must be of type float"),
    ("ppo", "learning_rate", "", "must be of type float"),
    ("ppo", "gamma", "none", "must be of type float"),
    ("ppo", "seed", "3.5", "must be of type int"),
    ("ppo", "seed", "none", "must be of type int"),
    ("ppo", "total_steps", "1e5", "must be of type int"),
    ("ppo", "stop_at_return", "abc", "must be of type float | None"),
    ("ppo", "net_arch", "64,x", "must be of type tuple[int, ...]"),
    ("ppo", "net_arch", '[64, "x"]', "must be of type tuple[int, ...]"),
    ("ppo", "net_arch", "64.5,64", "must be of type tuple[int, ...]"),
    ("ppo", "net_arch", '{"a": 1}', "must be of type tuple[int, ...]"),
    ("ppo", "net_arch", "[64, 64", "must be of type tuple[int, ...]"),
    ("ppo", "critic_arch", "a,b", "must be of type tuple[int, ...] | None"),
    ("ppo", "env_kwargs", "[1]", "must be of type dict"),
    ("ppo", "env_kwargs", "{bad", "must be of type dict"),
    ("ppo", "env_kwargs", "a=1", "must be of type dict"),
    ("sac", "buffer_size", "1_000_000.5", "must be of type int"),
]


@pytest.mark.parametrize("algo, name, text, allowed", PARSE_BAD, ids=[f"{a}-{n}-{t!r}" for a, n, t, _ in PARSE_BAD])
def test_parse_value_rejects(algo, name, text, allowed):
    with pytest.raises(ConfigError) as info:
        parse_value(ALGOS[algo].Config, name, text)
    message = str(info.value)
    assert message.startswith(f"{algo}: {name} = {text!r} is invalid"), message
    assert allowed in message, message


PARSE_BAD_BUGS = [
    pytest.param("[64.5, 64]", id="json-float-truncated"),
    pytest.param("[true, 64]", id="json-bool-becomes-1"),
    pytest.param("[[64]]", id="json-nested-list-TypeError"),
    pytest.param('[64, null]', id="json-null-TypeError"),
]


@pytest.mark.parametrize("text", PARSE_BAD_BUGS)
def test_parse_value_rejects_non_integer_json_tuple_elements(text):
    with pytest.raises(ConfigError, match=r"ppo: net_arch = .* is invalid: must be of type tuple\[int, \.\.\.\]"):
        parse_value(ppo.Config, "net_arch", text)


@dataclasses.dataclass(frozen=True)
class FloatTuple(RunConfig):
    limits: tuple[float, ...] = (25.0,)
    """A tuple of floats, e.g. ppo_lagrangian's cost_limit."""


@pytest.mark.parametrize(
    "text, expected",
    [("25", (25.0,)), ("25,10.5", (25.0, 10.5)), (" 1e2, 3 ", (100.0, 3.0)), ("[1, 2.5]", (1.0, 2.5))],
)
def test_parse_value_float_tuple(text, expected):
    value = parse_value(FloatTuple, "limits", text)
    assert value == expected and all(type(v) is float for v in value)


@pytest.mark.parametrize("text", ["25,x", "[true]", '["1.0"]', "[[1.0]]", "[1.0, null]", "{}"])
def test_parse_value_float_tuple_rejects(text):
    message = f"FloatTuple: limits = {text!r} is invalid: must be of type tuple[float, ...]"
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_value(FloatTuple, "limits", text)


def test_float_tuple_field_takes_ints_and_lists_and_rejects_other_elements():
    cfg = FloatTuple(limits=[25, 10.5])
    assert cfg.limits == (25.0, 10.5) and all(type(v) is float for v in cfg.limits)
    for bad in [(1.0, "x"), (1.0, True), (1.0, None), 25.0]:
        message = f"FloatTuple: limits = {bad!r} is invalid: must be of type tuple[float, ...]"
        with pytest.raises(ConfigError, match=re.escape(message)):
            FloatTuple(limits=bad)


def cli_text(value: Any) -> str:
    """How a user writes `value` on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize("owner", list(OWNERS))
def test_every_field_default_round_trips_through_parse_value(owner):
    cls = OWNERS[owner]
    cfg = cls(env_kwargs={"k": [1, 2]})
    for f in dataclasses.fields(cls):
        value = getattr(cfg, f.name)
        parsed = parse_value(cls, f.name, cli_text(value))
        assert parsed == value and type(parsed) is type(value), (f.name, value, parsed)


# -- field docs (what --help shows) --------------------------------------------------------------


@pytest.mark.parametrize("owner", list(OWNERS))
def test_field_docs_cover_every_field_with_one_line(owner):
    cls = OWNERS[owner]
    docs = field_docs(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert set(names) <= set(docs), sorted(set(names) - set(docs))
    for name in names:
        doc = docs[name]
        assert isinstance(doc, str) and doc.strip() and "\n" not in doc, (name, doc)
        assert doc == " ".join(doc.split()), (name, doc)
        assert len(doc) >= 8, (name, doc)


def test_field_docs_are_the_docstrings_under_each_field():
    assert field_docs(sac.Config)["buffer_size"] == "Replay buffer capacity in transitions."
    assert field_docs(td3.Config)["policy_delay"] == "Critic steps per actor and target update."
    assert field_docs(ppo.Config)["seed"] == "Seed of every random number generator of the run."  # inherited
    # an algorithm's own docstring wins over another's for fields of the same name
    assert field_docs(a2c.Config)["learning_rate"].startswith("Step size")
    assert field_docs(ppo.Config)["learning_rate"].startswith("Adam step size")


@dataclasses.dataclass(frozen=True)
class WrappedDocs(RunConfig):
    extra: int = 1
    """A field doc that
    runs over   two lines."""
    undocumented: int = 2


def test_field_docs_join_multi_line_docstrings_into_one_line():
    docs = field_docs(WrappedDocs)
    assert docs["extra"] == "A field doc that runs over two lines."
    assert "undocumented" not in docs
    assert docs["env"].startswith("Gymnasium id")


# -- api.resolve: defaults, presets, flags --------------------------------------------------------

PPO_CARTPOLE = {
    "num_envs": 8,
    "total_steps": 100_000,
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 0.001,
    "lr_schedule": "linear",
    "clip_range": 0.2,
    "clip_range_schedule": "linear",
}


def test_resolve_applies_the_cartpole_preset_with_sources():
    cfg, sources = api.resolve("ppo", {"env": "CartPole-v1", "seed": 3})
    assert isinstance(cfg, ppo.Config)
    assert cfg.env == "CartPole-v1" and cfg.seed == 3
    for key, value in PPO_CARTPOLE.items():
        assert getattr(cfg, key) == value, key
    names = {f.name for f in dataclasses.fields(ppo.Config)}
    assert set(sources) == names
    expected = {name: "default" for name in names} | {k: "preset" for k in PPO_CARTPOLE} | {"env": "flag", "seed": "flag"}
    assert sources == expected
    defaults = ppo.Config()
    for name, origin in sources.items():
        if origin == "default":
            assert getattr(cfg, name) == getattr(defaults, name), name


def test_resolve_without_preset_gives_defaults():
    cfg, sources = api.resolve("ppo", {"env": "CartPole-v1", "seed": 3}, preset=False)
    assert cfg == ppo.Config(env="CartPole-v1", seed=3)
    assert cfg.n_steps == 2048 and cfg.batch_size == 64 and cfg.num_envs == 1
    assert {k for k, v in sources.items() if v != "default"} == {"env", "seed"}
    assert set(sources.values()) == {"default", "flag"}


def test_resolve_flags_override_presets():
    cfg, sources = api.resolve("ppo", {"env": "CartPole-v1", "n_steps": 16, "gamma": 0.95, "num_envs": 2})
    assert (cfg.n_steps, cfg.gamma, cfg.num_envs) == (16, 0.95, 2)
    assert sources["n_steps"] == sources["gamma"] == sources["num_envs"] == "flag"
    assert cfg.batch_size == 256 and sources["batch_size"] == "preset"


def test_resolve_env_without_preset_and_algorithm_without_one():
    cfg, sources = api.resolve("ppo", {"env": "dramaturg.envs.native:Nothing"})
    assert cfg.n_steps == 2048 and "preset" not in sources.values()
    cfg, sources = api.resolve("sac", {"env": "CartPole-v1"})  # zoo has no sac CartPole entry
    assert cfg == sac.Config() and "preset" not in sources.values()


def test_resolve_default_env_gets_its_preset():
    cfg, sources = api.resolve("ppo", {})
    assert cfg.env == "CartPole-v1" and cfg.n_steps == 32 and sources["n_steps"] == "preset"
    assert sources["env"] == "default"


def test_resolve_rejects_unknown_flag_and_bad_values():
    with pytest.raises(ConfigError, match=r"^ppo: unknown field 'learning_rat' \(did you mean learning_rate\?\)"):
        api.resolve("ppo", {"learning_rat": 0.1})
    with pytest.raises(ConfigError, match=r"^ppo: gamma = 2\.0 is invalid: must be in \[0, 1\]"):
        api.resolve("ppo", {"gamma": 2.0})
    with pytest.raises(ConfigError, match=r"unknown algorithm 'ppp' \(did you mean ppo\?\)"):
        api.resolve("ppp", {})


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """Record any call into an algorithm's train; run from tmp_path so default run folders land there."""
    monkeypatch.chdir(tmp_path)
    calls: list[str] = []
    for name, module in ALGOS.items():
        monkeypatch.setattr(module, "train", lambda *a, _n=name, **k: calls.append(_n) or pytest.fail(f"{_n}.train called"))
    return calls


@pytest.fixture
def no_stepping(monkeypatch, tmp_path):
    """Fail on any reset or step of CartPole and on building any algorithm's networks."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    monkeypatch.chdir(tmp_path)
    calls: list[str] = []

    def forbid(what):
        def call(*args, **kwargs):
            calls.append(what)
            raise AssertionError(f"{what} called: the check came too late")

        return call

    monkeypatch.setattr(CartPoleEnv, "step", forbid("CartPoleEnv.step"))
    monkeypatch.setattr(CartPoleEnv, "reset", forbid("CartPoleEnv.reset"))
    for name, module in ALGOS.items():
        monkeypatch.setattr(module, "make", forbid(f"{name}.make"))
    return calls


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_unknown_algorithm(capsys, no_training):
    code, out, err = run_main(["train", "ppp", "--env", "CartPole-v1"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("dramaturg: error: ")
    assert "unknown algorithm 'ppp'" in err and "did you mean ppo" in err
    assert f"known: {', '.join(algos.ALGORITHMS)}" in err
    assert no_training == []


@pytest.mark.parametrize("option", [["--learning-rat", "0.1"], ["--learning-rat=0.1"], ["--learn", "0.1"], ["--gam", "0.9"]])
def test_cli_unknown_option_is_not_an_abbreviation(option, capsys, no_training):
    code, out, err = run_main(["train", "ppo", *option], capsys)
    assert code == 2 and out == ""
    assert "ppo: unknown option" in err and repr(option[0]) in err, err
    if option[0].startswith("--learning-rat"):
        assert "did you mean --learning-rate" in err, err
    assert no_training == []


def test_parse_fields_refuses_abbreviations_and_stray_words():
    with pytest.raises(ConfigError, match=r"ppo: unknown option '--learning-rat' \(did you mean --learning-rate\?\)"):
        cli.parse_fields("ppo", ["--learning-rat", "0.1"])
    with pytest.raises(ConfigError, match=r"ppo: unknown option 'extra'"):
        cli.parse_fields("ppo", ["extra"])
    with pytest.raises(ConfigError, match=r"sac: unknown option '--n-epochs'"):
        cli.parse_fields("sac", ["--n-epochs", "3"])  # a ppo field is no sac option


def test_parse_fields_converts_and_takes_both_spellings():
    flags, no_preset = cli.parse_fields(
        "ppo",
        ["--gamma", "0.9", "--net-arch", "32,32", "--normalize-obs", "--n_steps", "16", "--stop-at-return", "none",
         "--log-std-init", "-1", "--no-preset"],
    )
    assert flags == {"gamma": 0.9, "net_arch": (32, 32), "normalize_obs": True, "n_steps": 16, "stop_at_return": None,
                     "log_std_init": -1.0}
    assert no_preset is True
    flags, no_preset = cli.parse_fields("a2c", ["--progress", "false"])
    assert flags == {"progress": False} and no_preset is False


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "ppo", "--gamma", "2"], "ppo: gamma = 2.0 is invalid: must be in [0, 1]"),
        (["train", "ppo", "--seed", "-1"], "ppo: seed = -1 is invalid: must be >= 0"),
        (["train", "ppo", "--learning-rate", "abc"], "ppo: learning_rate = 'abc' is invalid: must be of type float"),
        (["train", "ppo", "--net-arch", "64,x"], "ppo: net_arch = '64,x' is invalid: must be of type tuple[int, ...]"),
        (["train", "a2c", "--optimizer", "sgd"], "a2c: optimizer = 'sgd' is invalid: must be one of rmsprop, adam"),
        (["train", "sac", "--env", "Pendulum-v1", "--batch-size", "512", "--buffer-size", "256"],
         "sac: batch_size = 512 is invalid: must be <= buffer_size (256)"),
        (["train", "td3", "--env", "Pendulum-v1", "--tau", "0"], "td3: tau = 0.0 is invalid: must be in (0, 1]"),
        (["train", "ppo", "--stop-at-return", "inf"], "ppo: stop_at_return = inf is invalid: must be finite"),
        (["train", "ppo", "--normalize-obs", "maybe"], "ppo: normalize_obs = 'maybe' is invalid: must be of type bool"),
    ],
)
def test_cli_bad_value_exits_2_before_training(argv, message, capsys, no_training, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_main([*argv, "--run-dir", str(run_dir)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("dramaturg: error: ") and message in err, err
    assert no_training == []
    assert not run_dir.exists()


def test_cli_unknown_environment_exits_2_before_stepping(capsys, no_stepping, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_main(["train", "ppo", "--env", "CartPol-v1", "--progress", "false", "--run-dir", str(run_dir)], capsys)
    assert code == 2
    assert "unknown environment id 'CartPol-v1'" in err and "did you mean" in err and "CartPole-v1" in err, err
    assert no_stepping == []
    assert not (run_dir / "metrics.csv").exists()
    assert not (run_dir / "spaces.json").exists()


def test_cli_sac_on_discrete_actions_exits_2_before_stepping(capsys, no_stepping, tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", "sac", "--env", "CartPole-v1", "--total-steps", "64", "--progress", "false", "--run-dir", str(run_dir)]
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert err.startswith("dramaturg: error: sac needs a 1-D Box (continuous) action space"), err
    assert "Discrete(2)" in err and "ppo or a2c" in err
    assert no_stepping == []
    assert not (run_dir / "spaces.json").exists()
    assert not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_cli_discrete_actions_write_no_metrics(algo, capsys, no_stepping, tmp_path):
    run_dir = tmp_path / "run"
    argv = ["train", algo, "--env", "CartPole-v1", "--total-steps", "64", "--progress", "false", "--run-dir", str(run_dir)]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and f"{algo} needs a 1-D Box" in err
    assert not (run_dir / "metrics.csv").exists()


@pytest.mark.parametrize("argv", [["ppo", "--env", "CartPol-v1"], ["sac", "--env", "CartPole-v1"]], ids=["unknown-env", "sac-discrete"])
def test_cli_env_errors_leave_no_run_folder(argv, capsys, no_stepping, tmp_path):
    run_dir = tmp_path / "run"
    code, _, _ = run_main(["train", *argv, "--progress", "false", "--run-dir", str(run_dir)], capsys)
    assert code == 2
    assert not run_dir.exists()


def test_cli_nested_json_tuple_exits_2(capsys, no_training):
    code, _, err = run_main(["train", "ppo", "--net-arch", "[[64]]"], capsys)
    assert code == 2 and "net_arch" in err


@pytest.mark.parametrize(
    "extra, n_steps, origin", [([], 32, "preset"), (["--no-preset"], 2048, "default"), (["--n-steps", "8"], 8, "flag")]
)
def test_cli_passes_flags_and_preset_choice_to_training(extra, n_steps, origin, capsys, monkeypatch, tmp_path):
    from types import SimpleNamespace

    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_train(cfg, *, sources=None, resume=False):
        seen.update(cfg=cfg, sources=sources)
        summary = {"algo": "ppo", "env": cfg.env, "steps_done": 0, "train_time_s": 0.0, "solved_step": None}
        return SimpleNamespace(summary=summary, run_dir=tmp_path)

    monkeypatch.setattr(ppo, "train", fake_train)
    code, out, _ = run_main(["train", "ppo", "--env", "CartPole-v1", "--seed", "4", *extra], capsys)
    assert code == 0 and "ppo on CartPole-v1" in out
    cfg, sources = seen["cfg"], seen["sources"]
    assert isinstance(cfg, ppo.Config) and cfg.seed == 4 and sources["seed"] == "flag"
    assert cfg.n_steps == n_steps and sources["n_steps"] == origin


@pytest.mark.parametrize("algo", list(ALGOS))
def test_cli_help_lists_every_field(algo, capsys, no_training):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", algo, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    squashed = "".join(out.split())
    cls = ALGOS[algo].Config
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        assert "--" + f.name.replace("_", "-") in out, f.name
        assert "".join(docs[f.name].split()) in squashed, f.name  # its one-line doc is the help text
    assert "--no-preset" in out
    assert no_training == []


# -- validation gaps: values the rules should refuse but accept ------------------------------------


@pytest.mark.parametrize("device", ["cuda:x", "cudax", "cuda:"])
def test_device_must_be_cuda_or_cuda_n(device):
    assert_rejected("ppo", {"device": device}, "device", device, "must be auto, cpu, cuda or cuda:N")


@pytest.mark.parametrize(
    "algo, field, value",
    [("ppo", "net_arch", (64, -1)), ("ppo", "net_arch", (0,)), ("ppo", "critic_arch", (-32,)),
     ("a2c", "net_arch", (0, 64)), ("sac", "net_arch", (-256,)), ("td3", "net_arch", (400, 0))],
)
def test_layer_widths_must_be_positive(algo, field, value):
    with pytest.raises(ConfigError) as info:
        ALGOS[algo].Config(**{field: value})
    assert str(info.value).startswith(f"{algo}: {field} = {value!r}")


@pytest.mark.parametrize("algo", list(ALGOS))
def test_learning_rate_must_be_finite(algo):
    with pytest.raises(ConfigError, match=rf"^{algo}: learning_rate = inf is invalid"):
        ALGOS[algo].Config(learning_rate=INF)


def test_type_error_shows_the_value_passed():
    assert_rejected("ppo", {"env_kwargs": ["a"]}, "env_kwargs", ["a"], "must be of type dict")
