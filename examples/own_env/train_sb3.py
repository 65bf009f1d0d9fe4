"""Train a Stable-Baselines3 PPO CnnPolicy on the user's own env (``DoorKeyRGB-v0``) and save it,
as a user of digr would have done before coming to it.

    python examples/own_env/train_sb3.py --timesteps 200000 --out doorkey_ppo.zip
"""

import argparse

import doorkey_env  # noqa: F401 - registers DoorKeyRGB-v0
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=200_000)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--out", default="doorkey_ppo.zip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    env = make_vec_env("DoorKeyRGB-v0", n_envs=4, seed=args.seed)
    model = PPO("CnnPolicy", env, n_steps=args.n_steps, batch_size=64, learning_rate=2.5e-4, ent_coef=0.01,
                seed=args.seed, device="cpu", verbose=0)
    model.learn(args.timesteps)
    model.save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
