"""Tests for dramaturg.presets (values hand-checked against rl-zoo3 yml files)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dramaturg.presets import PRESETS, preset_for

ALGOS = {"ppo", "a2c", "sac", "td3"}

# Fields each algorithm's config has (besides the common ones).
COMMON_FIELDS = {"total_steps", "num_envs", "normalize_obs", "normalize_reward", "eval_every", "torch_threads", "env_kwargs"}
ALGO_FIELDS = {
    "ppo": {
        "learning_rate", "lr_schedule", "n_steps", "batch_size", "n_epochs",
        "gamma", "gae_lambda", "clip_range", "clip_range_schedule",
        "clip_range_vf", "normalize_advantage", "ent_coef", "vf_coef",
        "max_grad_norm", "target_kl", "net_arch", "critic_arch", "activation",
        "ortho_init", "log_std_init",
    },
    "a2c": {
        "learning_rate", "lr_schedule", "n_steps", "gamma", "gae_lambda",
        "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage",
        "optimizer", "rms_prop_eps", "net_arch", "activation", "ortho_init",
        "log_std_init",
    },
    "sac": {
        "learning_rate", "buffer_size", "learning_starts", "batch_size", "tau",
        "gamma", "train_freq", "gradient_steps", "ent_coef_init",
        "autotune_entropy", "target_entropy", "net_arch", "log_std_init",
    },
    "td3": {
        "learning_rate", "buffer_size", "learning_starts", "batch_size", "tau",
        "gamma", "train_freq", "gradient_steps", "policy_delay",
        "target_policy_noise", "target_noise_clip", "exploration_noise",
        "net_arch",
    },
}

INT_FIELDS = {
    "total_steps", "num_envs", "eval_every", "torch_threads", "n_steps", "batch_size", "n_epochs",
    "buffer_size", "learning_starts", "train_freq", "gradient_steps",
    "policy_delay",
}
BOOL_FIELDS = {
    "normalize_obs", "normalize_reward", "normalize_advantage", "ortho_init",
    "autotune_entropy",
}
STR_CHOICES = {
    "lr_schedule": {"constant", "linear"},
    "clip_range_schedule": {"constant", "linear"},
    "activation": {"tanh", "relu"},
    "optimizer": {"rmsprop", "adam"},
}
TUPLE_FIELDS = {"net_arch", "critic_arch"}
OPTIONAL_FLOAT_FIELDS = {"clip_range_vf", "target_kl", "target_entropy"}

ENTRIES = [
    (algo, env_id, cfg)
    for algo, table in PRESETS.items()
    for env_id, cfg in table.items()
]


def test_algo_keys():
    assert set(PRESETS) <= ALGOS
    assert set(PRESETS) == ALGOS


@pytest.mark.parametrize(("algo", "env_id", "cfg"), ENTRIES, ids=[f"{a}-{e}" for a, e, _ in ENTRIES])
def test_entry_fields_and_types(algo, env_id, cfg):
    assert isinstance(env_id, str) and cfg, env_id
    allowed = COMMON_FIELDS | ALGO_FIELDS[algo]
    assert set(cfg) <= allowed, set(cfg) - allowed
    for key, value in cfg.items():
        if key in INT_FIELDS:
            assert type(value) is int and value >= 0, (key, value)
        elif key in BOOL_FIELDS:
            assert type(value) is bool, (key, value)
        elif key in STR_CHOICES:
            assert value in STR_CHOICES[key], (key, value)
        elif key == "env_kwargs":
            assert type(value) is dict and all(type(k) is str for k in value), (key, value)
        elif key in TUPLE_FIELDS:
            assert type(value) is tuple and value, (key, value)
            assert all(type(v) is int and v > 0 for v in value), (key, value)
        elif key in OPTIONAL_FLOAT_FIELDS:
            assert value is None or type(value) is float, (key, value)
        else:
            assert type(value) is float, (key, value)
    # Round-trips through JSON (tuples become lists).
    json.loads(json.dumps(cfg))


def test_env_ids_are_registered_in_gymnasium_or_native():
    gym = pytest.importorskip("gymnasium")
    from dramaturg.envs.native import is_native

    for table in PRESETS.values():
        for env_id in table:
            if not is_native(env_id):
                gym.spec(env_id)  # raises if gymnasium does not know this id


def test_native_ids_fall_back_to_their_gymnasium_preset():
    assert preset_for("ppo", "dramaturg/CartPole-v1")["num_envs"] == 64  # its own entry
    assert preset_for("ppo", "dramaturg/Acrobot-v1") == preset_for("ppo", "Acrobot-v1")  # the counterpart's
    assert preset_for("td3", "dramaturg/MountainCarContinuous-v0") == preset_for("td3", "MountainCarContinuous-v0")


def test_ppo_cartpole_matches_zoo():
    assert PRESETS["ppo"]["CartPole-v1"] == {
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


def test_sac_pendulum_matches_zoo():
    assert PRESETS["sac"]["Pendulum-v1"] == {
        "total_steps": 20_000,
        "learning_rate": 1e-3,
    }


def test_ppo_halfcheetah_matches_zoo():
    cfg = PRESETS["ppo"]["HalfCheetah-v5"]
    assert cfg["normalize_obs"] is True and cfg["normalize_reward"] is True
    assert cfg["num_envs"] == 1
    assert cfg["total_steps"] == 1_000_000
    assert cfg["batch_size"] == 64
    assert cfg["n_steps"] == 512
    assert cfg["gamma"] == 0.98
    assert cfg["learning_rate"] == 2.0633e-05
    assert "lr_schedule" not in cfg
    assert cfg["ent_coef"] == 0.000401762
    assert cfg["clip_range"] == 0.1
    assert cfg["n_epochs"] == 20
    assert cfg["gae_lambda"] == 0.92
    assert cfg["max_grad_norm"] == 0.8
    assert cfg["vf_coef"] == 0.58096
    assert cfg["log_std_init"] == -2.0
    assert cfg["ortho_init"] is False
    assert cfg["activation"] == "relu"
    assert cfg["net_arch"] == (256, 256)
    assert "critic_arch" not in cfg


def test_a2c_pendulum_matches_zoo():
    assert PRESETS["a2c"]["Pendulum-v1"] == {
        "normalize_obs": True,
        "normalize_reward": True,
        "num_envs": 8,
        "total_steps": 1_000_000,
        "ent_coef": 0.0,
        "max_grad_norm": 0.5,
        "n_steps": 8,
        "gae_lambda": 0.9,
        "vf_coef": 0.4,
        "gamma": 0.9,
        "optimizer": "rmsprop",
        "normalize_advantage": False,
        "learning_rate": 7e-4,
        "lr_schedule": "linear",
        "log_std_init": -2.0,
        "ortho_init": False,
    }


def test_sac_mountaincar_continuous_fixed_entropy():
    cfg = PRESETS["sac"]["MountainCarContinuous-v0"]
    assert cfg["ent_coef_init"] == 0.1
    assert cfg["autotune_entropy"] is False
    assert cfg["net_arch"] == (64, 64)
    assert cfg["learning_starts"] == 0
    assert cfg["buffer_size"] == 50_000
    assert cfg["train_freq"] == 32 and cfg["gradient_steps"] == 32


def test_td3_mujoco_matches_zoo():
    cfg = PRESETS["td3"]["Hopper-v5"]
    assert cfg == {
        "total_steps": 1_000_000,
        "learning_starts": 10_000,
        "exploration_noise": 0.1,
        "train_freq": 1,
        "gradient_steps": 1,
        "learning_rate": 1e-3,
        "batch_size": 256,
        "net_arch": (400, 300),
    }
    assert PRESETS["td3"]["Humanoid-v5"]["total_steps"] == 2_000_000
    assert PRESETS["td3"]["Swimmer-v5"]["gamma"] == 0.9999


def test_expected_coverage():
    mujoco = {"HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5"}
    assert mujoco <= set(PRESETS["ppo"])
    assert {"Reacher-v5", "InvertedPendulum-v5", "InvertedDoublePendulum-v5"} <= set(PRESETS["ppo"])
    for algo in ("a2c", "sac", "td3"):
        assert mujoco <= set(PRESETS[algo]), algo
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"} <= set(PRESETS["ppo"])
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"} <= set(PRESETS["a2c"])
    for algo in ("sac", "td3"):
        assert {"Pendulum-v1", "MountainCarContinuous-v0", "LunarLanderContinuous-v3"} <= set(PRESETS[algo])
        # Off-policy continuous-action algorithms have no discrete-env entries.
        assert not {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"} & set(PRESETS[algo])


def test_preset_for_old_versions_map_to_v5():
    assert preset_for("sac", "HalfCheetah-v4") == PRESETS["sac"]["HalfCheetah-v5"]
    assert preset_for("sac", "HalfCheetah-v5") == PRESETS["sac"]["HalfCheetah-v5"]
    assert preset_for("ppo", "Hopper-v3") == PRESETS["ppo"]["Hopper-v5"]
    assert preset_for("ppo", "Reacher-v2") == PRESETS["ppo"]["Reacher-v5"]
    assert preset_for("ppo", "InvertedPendulum-v4") == PRESETS["ppo"]["InvertedPendulum-v5"]
    assert preset_for("ppo", "LunarLander-v2") == PRESETS["ppo"]["LunarLander-v3"]


def test_preset_for_unknown_gives_empty():
    assert preset_for("sac", "NoSuchEnv-v0") == {}
    assert preset_for("sac", "CartPole-v1") == {}
    assert preset_for("dqn", "CartPole-v1") == {}
    assert preset_for("ppo", "HalfCheetah-v6") == {}
    # A different env version (not a MuJoCo/LunarLander alias) is not guessed.
    assert preset_for("ppo", "CartPole-v0") == {}


def test_preset_for_returns_copy():
    cfg = preset_for("ppo", "CartPole-v1")
    cfg["n_steps"] = 1
    assert PRESETS["ppo"]["CartPole-v1"]["n_steps"] == 32


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_preset_keys_are_config_fields(algo):
    try:
        from dramaturg import algos
    except ImportError as exc:  # the module may not exist yet
        pytest.skip(f"dramaturg.algos not importable: {exc!r}")
    get = getattr(algos, "get", None)
    if get is None:
        pytest.skip("dramaturg.algos has no get()")
    module = get(algo)
    config_cls = module.Config
    assert dataclasses.is_dataclass(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    for env_id, cfg in PRESETS[algo].items():
        missing = set(cfg) - names
        assert not missing, f"{algo}/{env_id}: not Config fields: {sorted(missing)}"
