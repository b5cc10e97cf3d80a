"""The coach's default configuration, installed as the package `coach_config`.

This folder holds data only; `bot/config_files.py` reads it through importlib.resources, and a
school's own folder (`COACH_CONFIG_DIR`) overrides it file by file.
"""
