"""What runs inside a task: ``python -m kedro_vertex_runner.entrypoint`` and every module it needs.

The rule: a module here imports only this package and the shared modules of the package root (``errors``,
``values``, ``network``, ``storage``, ``kedro_compat``, ``files``), never the launcher, the compiler, the CLI or a backend
(``tests/test_task_package.py`` reads it from the source); the launcher, the compiler and the backends may import
from here. None of it imports kfp, google-cloud-aiplatform or mlflow at module level (``tests/test_entrypoint.py``
runs a task and checks what it loaded).

- ``entrypoint``: the task itself (arguments, session, exit status); ``contract``: its arguments and report file
- ``runners``: how a task runs its nodes; ``persistence``: what crosses a task's boundary and where it is stored
- ``resolvers``: the ``${vertex:…}`` config resolvers; ``secret_manager``: secrets and the exit task's webhook
- ``artifacts``: the Vertex AI artifacts a task writes; ``timings``: node times a task records
- ``processes``: a task's process tree (subreaper, descendants, exit)
- ``mlflow_run``: a task joining the job's MLflow run; ``code_unpack``: fetching and unpacking uploaded code
"""
