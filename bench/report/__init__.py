"""Stage 6, report: the Markdown/HTML reports rendered from result files only (`render`, which
puts the others together): the result rows as tables and CSVs (`tables`), the generic sections
(`sections`), the project's own comparisons and their targets (`studies`), claim 4's corpus-size
study with its figures (`corpus_size`), the claims ledger that
opens the report and `lm-lineage claims` prints (`claims`), with one rule per check of a claim
(`claim_rules`) and the verdicts and rows those rules share (`verdicts`), the closing table of a run
(`summary`), blocks written as Markdown and HTML (`markup`), and one function per figure: the
shared machinery and the general figures (`figures`), the layer-probe figures (`probe_figures`)
and the gradient figures (`gradient_figures`).

May import: `bench.run` (the result schema and atomic writes) and the stages before it.
"""
