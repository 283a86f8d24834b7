"""RL environment throughput and PPO training time on stochastic NMF.

* ``env``: environment steps (actions) per second of ``rl_scheduler/NMF-v0`` with the default
  budget (10 SGD steps per action), next to the floor: 10 bare ``ProjectedSGD.step`` calls on
  the same problems. ``ratio = env step / floor``; the excess is the per-chunk stability bound,
  the features and the bookkeeping. ``no bound`` turns the bound off (no shield) to show its cost.
* ``vec``: the same through stable-baselines3's ``DummyVecEnv`` / ``SubprocVecEnv``.
* ``ppo``: wall time of ``rl_scheduler.agent.train_ppo`` for a fixed number of timesteps.
* ``neutral runs``: ``train_ppo`` with the relative reward (``reward_baseline="neutral"``), its
  environments each running the neutral policy on their own (as before
  :func:`rl_scheduler.registration.make_sharing_env`), sharing one cache from cold, and a second
  training in the same process with every neutral run cached (a warm pool worker's next PPO
  seed); ``ratio`` = seconds / the unshared training's.

Run with ``python -m benchmarks env``; ``BENCH_PPO_STEPS`` sets the PPO budget (default 4096).
"""

import contextlib
import os
import time

import numpy as np

import nmf
from rl_scheduler import agent, make_nmf_env, registration

SETS = {
    "synthetic 60x40 r5": {"datasets": ["synthetic"]},
    "digits 300 rows r8": {"datasets": ["digits"]},
    "mix (default)": {},
}
N_ACTIONS = 600


def _env_rate(kwargs: dict) -> tuple[float, float]:
    """Actions per second of one env, and seconds per bare chunk of SGD steps (the floor)."""
    env = make_nmf_env(n_instances=6, **kwargs)
    for i in range(len(env.task.instances)):  # build (and cache) every problem first
        env.reset(seed=0, options={"instance": i})
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (N_ACTIONS, 1)).astype(np.float32)
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, _, _ = env.step(a)
        if terminated:
            env.reset()
    rate = N_ACTIONS / (time.perf_counter() - start)
    floor = []
    for inst in env.task.instances:
        sgd = nmf.ProjectedSGD(
            env.task._problem(env.task.instances.index(inst)),
            clip=0.1,
            seed=inst.seed,
            compute_bound=False,
        )
        start = time.perf_counter()
        for _ in range(10 * 30):
            sgd.step(1e-3)
        floor.append((time.perf_counter() - start) / 30)
    return rate, float(np.mean(floor))


def _vec_rate(n_envs: int, vec_env: str) -> float:
    venv = agent.make_vec({"n_instances": 6}, n_envs=n_envs, seed=0, vec_env=vec_env)
    venv.reset()
    actions = np.zeros((n_envs, 1), dtype=np.float32)
    for _ in range(20):
        venv.step(actions)
    n = N_ACTIONS // n_envs
    start = time.perf_counter()
    for _ in range(n):
        venv.step(actions)
    rate = n * n_envs / (time.perf_counter() - start)
    venv.close()
    return rate


def main() -> None:
    print(f"{'instances':>20} {'env steps/s':>12} {'floor':>9} {'ratio':>6} {'no bound':>10}")
    for name, kwargs in SETS.items():
        rate, floor = _env_rate(kwargs)
        rate_nb, _ = _env_rate({**kwargs, "compute_bound": False})
        print(
            f"{name:>20} {rate:>12.0f} {1 / floor:>9.0f} {1 / (rate * floor):>6.2f} {rate_nb:>10.0f}"
        )
    print(f"\n{'vectorised':>20} {'env steps/s':>12}")
    for n_envs, vec_env in ((1, "dummy"), (2, "dummy"), (4, "dummy"), (2, "subproc")):
        print(f"{f'{vec_env} x{n_envs}':>20} {_vec_rate(n_envs, vec_env):>12.0f}")
    steps = int(os.environ.get("BENCH_PPO_STEPS", "4096"))
    print(f"\n{'PPO':>20} {'timesteps':>10} {'seconds':>8} {'steps/s':>8}")
    for n_envs in (2, 4):
        start = time.perf_counter()
        agent.train_ppo(
            {"n_instances": 16},
            total_timesteps=steps,
            n_envs=n_envs,
            device="cpu",
            ppo_kwargs={"n_steps": 1024 // n_envs},
        )
        elapsed = time.perf_counter() - start
        print(f"{f'dummy x{n_envs}':>20} {steps:>10} {elapsed:>8.1f} {steps / elapsed:>8.0f}")

    _neutral_runs(steps)


@contextlib.contextmanager
def _sharing(on: bool):
    saved = registration.SHARE_BASELINE_RUNS
    registration.SHARE_BASELINE_RUNS = on
    registration.clear_shared_baseline_caches()
    try:
        yield
    finally:
        registration.SHARE_BASELINE_RUNS = saved


def _neutral_runs(steps: int) -> None:
    kwargs = {"n_instances": 16, "reward_baseline": "neutral"}

    def train(timesteps: int = steps) -> float:
        start = time.perf_counter()
        agent.train_ppo(
            kwargs, total_timesteps=timesteps, n_envs=4, device="cpu", ppo_kwargs={"n_steps": 256}
        )
        return time.perf_counter() - start

    print(f"\n{'neutral runs':>20} {'timesteps':>10} {'seconds':>8} {'ratio':>6}")
    with _sharing(False):
        train(1024)  # warm-up: data sets loaded, code paths compiled, for every row alike
        unshared = train()
    with _sharing(True):
        times = {"each env its own": unshared, "shared, cold": train(), "shared, warm": train()}
    for name, seconds in times.items():
        print(f"{name:>20} {steps:>10} {seconds:>8.1f} {seconds / unshared:>6.2f}")


if __name__ == "__main__":
    main()
