"""Cells that run for minutes show their own progress (issue 28): gensim's epochs, the
transformers encoder's batches, the analogy batches; nothing is drawn without `progress`."""
import numpy as np
from gensim.models import KeyedVectors, Word2Vec

from bench.eval import metrics
from bench.models import baselines

SENTENCES = [["the", "king", "rules"], ["the", "queen", "rules"]] * 20


def test_gensim_training_ticks_once_per_epoch_only_when_asked(capsys):
    config = baselines.GensimWord2VecConfig(vector_size=4, epochs=3, workers=1)
    [bar] = baselines._epoch_bar(config, "gensim word2vec", progress=True)
    Word2Vec(SENTENCES, callbacks=[bar], **baselines._gensim_kwargs(config, seed=0))
    assert bar.bar.n == 3 and "gensim word2vec" in capsys.readouterr().err
    assert baselines._epoch_bar(config, "gensim word2vec", progress=False) == []
    baselines.train_gensim_word2vec(SENTENCES, config, seed=0)
    assert capsys.readouterr().err == ""


def test_analogies_draw_a_bar_over_their_batches_only_when_asked(capsys):
    kv = KeyedVectors(2)
    kv.add_vectors(["athens", "greece", "baghdad", "iraq"], np.eye(4, 2, dtype=np.float32) + 0.1)
    metrics.evaluate_analogies(kv, methods=("3cosadd",), progress=True)
    assert "analogies 3cosadd" in capsys.readouterr().err
    metrics.evaluate_analogies(kv, methods=("3cosadd",))
    assert capsys.readouterr().err == ""
