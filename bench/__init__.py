"""lm-lineage's benchmark harness, one package per stage of the data flow.

    data -> train -> models -> eval -> run -> report -> commands (each command's handler),
    and `cli` (the `lm-lineage` command's parser, which `__main__` runs for `python -m bench`)
    on top.

A package imports only from the packages before it in that line (and from `impl`, the
models, which never import `bench`). Two small modules sit under every stage: `errors`
(BenchError, the one user-facing error) and `timing` (clocks that synchronize CUDA).
`tests/test_layout.py` checks these directions.
"""
