"""Reinforcement learning: environments (rl/envs.py) and agents that learn in the one training
engine (rl/agents.py), chosen by the config's `agent` section. See docs/rl.md."""

from grokscope.rl.envs import Bandit, ContextualBandit, Grid, GridGoals, VectorBandit, make_env

__all__ = ["Bandit", "ContextualBandit", "Grid", "GridGoals", "VectorBandit", "make_env"]
