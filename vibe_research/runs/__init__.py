"""One training run and one evaluation, each a sandboxed subprocess; events; outcomes; executors."""
