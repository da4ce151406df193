"""Stage 6, report: tables and the Markdown/HTML reports rendered from result files only
(`render`), one function per figure (`figures`), and the claims ledger that opens the report
and `lm-lineage claims` prints (`claims`).

May import: `bench.run` (the result schema and atomic writes) and the stages before it.
"""
