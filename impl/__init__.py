"""Reference implementations, one model per file.

Model files never import each other (nor `bench`); what several of them need lives in the
shared helper modules, whose names start with an underscore: `_checks` (config-field and
flat-corpus input checks) and `_cooccurrence` (the window co-occurrence counter of GloVe and
PPMI-SVD). `tests/test_layout.py` checks this.
"""
