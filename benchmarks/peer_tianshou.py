"""The Tianshou contestant of sb3_vs_dramaturg.py: the SB3 worker's tasks, hyperparameters and
evaluation, written with Tianshou 2's own parts (networks, PPO / SAC, Collector, replay buffers) in
a short loop of collect, update, evaluate. benchmarks/README.md says where it differs from SB3.

It runs in the child process the benchmark launches (`--tianshou-worker TASK`), which imports
Tianshou inside its measured time.
"""

from __future__ import annotations

import time

SAC_LEARNING_STARTS = 100  # SB3's default: uniform random actions first, no update before it
HINT = "the tianshou contestant needs Tianshou 2 (the bench extra): pip install -e '.[bench]'"


def tianshou_worker(
    spec: dict, seed: int, total_steps: int, launched_at: float | None, eval_episodes: int
) -> dict:
    """Train spec["algo"] on spec["env"] until a deterministic `eval_episodes`-episode evaluation
    at a multiple of spec["eval_every"] steps reaches spec["threshold"]; the SB3 worker's fields."""
    t_import = time.perf_counter()
    import gymnasium as gym
    import numpy as np
    import torch
    from torch.optim.lr_scheduler import LambdaLR

    try:
        from tianshou.algorithm import PPO, SAC
        from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
        from tianshou.algorithm.modelfree.sac import AutoAlpha, SACPolicy
        from tianshou.algorithm.optim import AdamOptimizerFactory, LRSchedulerFactory
        from tianshou.data import Collector, ReplayBuffer, VectorReplayBuffer
        from tianshou.env import DummyVectorEnv
        from tianshou.utils.net.common import Net
        from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
        from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic
        from tianshou.utils.torch_utils import policy_within_training_step
    except ImportError as e:
        raise SystemExit(f"{HINT} ({e})") from e

    import_s = time.perf_counter() - t_import
    torch.manual_seed(seed)
    np.random.seed(seed)

    t_setup = time.perf_counter()

    def envs(n: int, first_seed: int) -> DummyVectorEnv:
        venv = DummyVectorEnv([lambda: gym.make(spec["env"]) for _ in range(n)])
        venv.seed(first_seed)  # env i gets first_seed + i, as SB3's make_vec_env
        return venv

    probe = gym.make(spec["env"])
    obs_shape, action_space = probe.observation_space.shape, probe.action_space
    ppo = spec["algo"] == "ppo"
    if ppo:  # rl-zoo3 CartPole-v1; SB3's MlpPolicy: separate 64-64 tanh nets, orthogonal init
        n_envs, rollout = 8, 8 * 32

        def remaining(update: int) -> float:  # SB3's progress_remaining during update `update`
            return max(0.0, 1.0 - (update + 1) * rollout / total_steps)

        class LinearToZero(LRSchedulerFactory):  # lin_1e-3: stepped once per update
            def create_scheduler(self, optim: torch.optim.Optimizer) -> LambdaLR:
                return LambdaLR(optim, remaining)

        def orthogonal(net: torch.nn.Module, gain: float) -> None:  # SB3's ortho_init
            for layer in net.modules():
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.orthogonal_(layer.weight, gain)
                    torch.nn.init.zeros_(layer.bias)

        def body() -> Net:
            net = Net(state_shape=obs_shape, hidden_sizes=[64, 64], activation=torch.nn.Tanh)
            orthogonal(net, 2**0.5)
            return net

        actor = DiscreteActor(
            preprocess_net=body(), action_shape=action_space.n, softmax_output=False
        )
        critic = DiscreteCritic(preprocess_net=body())
        orthogonal(actor.last, 0.01)
        orthogonal(critic.last, 1.0)
        policy = DiscreteActorPolicy(
            actor=actor, deterministic_eval=True, action_space=action_space
        )
        optim = AdamOptimizerFactory(lr=1e-3, eps=1e-5).with_lr_scheduler_factory(LinearToZero())
        algo = PPO(
            policy=policy,
            critic=critic,
            optim=optim,
            eps_clip=0.2,
            vf_coef=0.5,
            ent_coef=0.0,
            max_grad_norm=0.5,
            gae_lambda=0.8,
            gamma=0.98,
            advantage_normalization=True,
        )
        buffer = VectorReplayBuffer(rollout, n_envs)  # 32 steps per env, emptied after each update
    else:  # rl-zoo3 Pendulum-v1: lr 1e-3, SB3's SAC defaults otherwise (256-256 relu)
        n_envs, rollout = 1, 1

        def q_net() -> ContinuousCritic:  # SB3 builds its two critics independently
            body = Net(
                state_shape=obs_shape,
                action_shape=action_space.shape,
                hidden_sizes=[256, 256],
                concat=True,
            )
            return ContinuousCritic(preprocess_net=body)

        actor = ContinuousActorProbabilistic(
            preprocess_net=Net(state_shape=obs_shape, hidden_sizes=[256, 256]),
            action_shape=action_space.shape,
            unbounded=True,
            conditioned_sigma=True,
        )  # mean and log std heads (clamped to [-20, 2]), tanh-squashed, as SB3's actor
        policy = SACPolicy(actor=actor, action_space=action_space)  # deterministic eval: tanh(mean)
        adam = AdamOptimizerFactory(lr=1e-3)
        alpha = AutoAlpha(
            target_entropy=-float(np.prod(action_space.shape)), log_alpha=0.0, optim=adam
        )
        algo = SAC(
            policy=policy,
            policy_optim=adam,
            critic=q_net(),
            critic_optim=adam,
            critic2=q_net(),
            critic2_optim=adam,
            tau=0.005,
            gamma=0.99,
            alpha=alpha,
        )
        buffer = ReplayBuffer(1_000_000, random_seed=seed)
    collector = Collector(algo, envs(n_envs, seed), buffer)
    evaluator = Collector(policy, envs(1, seed + 10_000))
    setup_s = time.perf_counter() - t_setup

    eval_every, threshold = spec["eval_every"], spec["threshold"]
    steps, updates, next_eval, evals, eval_s, solved = 0, 0, eval_every, [], 0.0, None
    t_learn = time.perf_counter()
    collector.reset()
    if not ppo:
        with torch.no_grad(), policy_within_training_step(policy):
            steps += collector.collect(n_step=SAC_LEARNING_STARTS, random=True).n_collected_steps
    while steps < total_steps and solved is None:
        with policy_within_training_step(policy):  # stochastic actions while collecting
            with torch.no_grad():
                steps += collector.collect(n_step=rollout).n_collected_steps
            if ppo:
                algo.eps_clip = 0.2 * remaining(updates)  # clip lin_0.2
                algo.update(buffer, batch_size=256, repeat=20)
                buffer.reset(keep_statistics=True)
            else:
                algo.update(buffer, sample_size=256)
            updates += 1
        if steps < next_eval:
            continue
        next_eval = (steps // eval_every + 1) * eval_every
        t = time.perf_counter()
        with torch.no_grad():  # outside a training step: deterministic actions
            result = evaluator.collect(n_episode=eval_episodes, reset_before_collect=True)
        now = time.perf_counter()
        eval_s += now - t
        mean, std = result.returns_stat.mean, result.returns_stat.std
        evals.append({"step": steps, "mean_return": float(mean), "std_return": float(std)})
        evals[-1]["time_s"] = now - t_learn
        if mean >= threshold:
            solved = evals[-1] | {
                "since_launch_s": time.time() - launched_at if launched_at else None
            }
    learn_s = time.perf_counter() - t_learn
    solved = solved or {}
    return {
        "solved_step": solved.get("step"),
        "train_s": solved.get("time_s"),  # first collect to end of the solving eval, evals included
        "launch_to_solved_s": solved.get("since_launch_s"),
        "steps_done": steps,
        "steps_per_s": steps / learn_s,  # evaluation time included
        "learn_s": learn_s,
        "eval_s": eval_s,
        "import_s": import_s,
        "setup_s": setup_s,
        "updates": updates,
        "evals": evals,
        "torch_threads": torch.get_num_threads(),
    }
