"""Reference implementations, one model per file: `nnlm` (Bengio et al.'s neural probabilistic
LM), `rnn` (RNN, LSTM and GRU LMs), `kneser_ney` (interpolated modified Kneser-Ney), `word2vec`
(CBOW and skip-gram), `glove`, `svd` (SVD of shifted PPMI) and `elmo` (ELMo's biLM).

Model files never import each other (nor `bench`); what several of them need, or what one
keeps apart from its API, lives in the helper modules, whose names start with an underscore:
`_checks` (config-field and flat-corpus input checks), `_cooccurrence` (the window
co-occurrence counter of GloVe and PPMI-SVD), `_torch_threads` (torch's thread count for a
block, restored after), ELMo's sampled and block-wise full softmax losses (`_softmax`) and its
biLSTM layer on a CPU (`_lstmp`), and word2vec's sampling tables (`_word2vec_tables`), numba kernel (`_word2vec_numba`) and torch path
(`_word2vec_torch`). `tests/test_layout.py` checks this.
"""
