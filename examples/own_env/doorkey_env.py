"""A user's own environment: MiniGrid DoorKey-5x5 seen as a full RGB image.

Importing this module registers ``DoorKeyRGB-v0`` with Gymnasium, which is all digr needs:
``--env DoorKeyRGB-v0 --env-module doorkey_env`` (with this folder on ``PYTHONPATH``).
Observations: ``(40, 40, 3)`` uint8 (5x5 cells of 8 pixels); actions: MiniGrid's 7.
"""

import gymnasium as gym


def make_doorkey(**kwargs):
    import minigrid  # noqa: F401 - registers MiniGrid's ids
    from minigrid.wrappers import ImgObsWrapper, RGBImgObsWrapper

    env = gym.make("MiniGrid-DoorKey-5x5-v0", **kwargs)
    return ImgObsWrapper(RGBImgObsWrapper(env, tile_size=8))


if "DoorKeyRGB-v0" not in gym.registry:
    gym.register(id="DoorKeyRGB-v0", entry_point=make_doorkey)
