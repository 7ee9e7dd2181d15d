"""Templates that `kedro vertexai init` copies into a project (shipped as kedro_vertex_runner.templates)."""
