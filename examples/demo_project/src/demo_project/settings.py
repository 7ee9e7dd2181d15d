"""Project settings for demo_project.

Intentionally minimal: no project hooks are registered here. Installed plugins
(e.g. kedro-vertex-runner) auto-register their hooks via entry points.
"""

# kedro-mlflow (if installed in the environment) auto-registers a hook that,
# without a conf/*/mlflow.yml, falls back to a ./mlruns file store, which
# MLflow 3 refuses -> `kedro run` crashes. This project does not use MLflow
# (yet), so its hooks are disabled. Remove this line when adding mlflow.yml.
# (pluggy reports the distribution name as "kedro_mlflow"; both spellings listed.)
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
