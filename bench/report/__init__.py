"""Stage 6, report: tables and the Markdown/HTML reports rendered from result files only
(`render`), and one function per figure (`figures`).

May import: `bench.run` (the result schema and atomic writes) and the stages before it.
"""
