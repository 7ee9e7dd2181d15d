from kedro_vertex_runner.task.entrypoint import _main_and_exit, _watch_launcher

_watch_launcher()
_main_and_exit()
