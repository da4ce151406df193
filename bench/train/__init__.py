"""Stage 2, train: the training and evaluation loops of the language-model families, `lm`
(NNLM, RNN/LSTM/GRU LMs and user LMs: token ids in, logits out) and `bilm` (ELMo's biLM, its
type-level vectors and per-layer features).

May import: `bench.data`, `bench.errors`, `bench.timing`, `impl`.
"""
