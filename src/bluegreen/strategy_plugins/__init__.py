"""Ansible strategy plugins the commands run with (bluegreen.runner.strategy_envvars)."""
