"""demo_project: example Kedro project for kedro-vertex-runner."""

__version__ = "0.1"
