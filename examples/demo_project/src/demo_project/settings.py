"""Project settings for demo_project.

Intentionally minimal: no project hooks are registered here. Installed plugins
(e.g. kedro-vertex-runner) auto-register their hooks via entry points.
"""

# kedro-mlflow (if installed) auto-registers its hooks. They are off here so the
# demo runs fast and needs no tracking server; delete this line to track every
# job in one MLflow run (conf/base/mlflow.yml uses sqlite:///mlflow.db).
# (pluggy reports the distribution name as "kedro_mlflow"; both spellings listed.)
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
