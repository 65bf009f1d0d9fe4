"""Task environments and the task registry (``--task`` names)."""

from digr.envs.registry import TASKS, TaskSpec, get_task, make_env, register_envs, register_task, task_for_obs

register_envs()

__all__ = ["TASKS", "TaskSpec", "get_task", "make_env", "register_envs", "register_task", "task_for_obs"]
