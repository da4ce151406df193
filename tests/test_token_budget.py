"""The token budget of the LM and biLM training loops (`LMTrainConfig.max_tokens`): training
stops once the batches read hold at least that many training tokens, over all epochs, so a
long run's length does not depend on the machine's load."""

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.run.config import load_matrix
from bench.run.keys import cell_key, config_block
from bench.train import bilm, lm
from impl.rnn import RNNLM, RNNLMConfig
from tests.test_bilm import prepared_toy, tiny_model

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("one_torch_thread")]

CPU = torch.device("cpu")


def test_an_rnn_lm_stops_on_the_token_budget_in_its_second_epoch():
    ids = np.tile(np.arange(9, dtype=np.int32), 60)  # 540 tokens: 4 rows of 135, 134 targets each
    model = RNNLM(RNNLMConfig(cell="rnn", emb=8, hidden=8, layers=1), vocab_size=10)
    config = lm.LMTrainConfig(batch_size=4, bptt=10, epochs=5, max_tokens=600)
    result = lm.train_lm(model, ids, ids[:90], config, CPU, seed=0, start_id=9)
    assert result["stopped"] == "token budget"
    first, second = result["history"]
    assert first["complete"] and first["train_tokens"] == 4 * 134
    # Steps of 4 x 10 targets: the second one of epoch 2 crosses 600 (536 + 80 = 616).
    assert not second["complete"] and second["train_tokens"] == 2 * 4 * 10


def test_a_bilm_reads_at_least_the_budget_and_stops_at_the_step_that_reaches_it(tmp_path):
    data = bilm.BiLMData(prepared_toy(tmp_path), max_chars=8)  # 300 train sentences of 6 words: 1,800 words
    config = lm.LMTrainConfig(lr=1e-2, batch_size=16, epochs=5, clip=10.0, max_tokens=2000)
    record = bilm.train_bilm(tiny_model(data), data, config, CPU, seed=0)
    assert record["stopped"] == "token budget"
    first, second = record["history"]
    assert first["complete"] and first["train_tokens"] == 1800
    # A step reads at most 16 sentences (96 words): the last one is the first to reach 2,000.
    assert not second["complete"] and 2000 <= first["train_tokens"] + second["train_tokens"] < 2000 + 96


def test_the_time_budget_is_still_named_when_it_stops_training():
    ids = np.tile(np.arange(9, dtype=np.int32), 60)
    model = RNNLM(RNNLMConfig(cell="rnn", emb=8, hidden=8, layers=1), vocab_size=10)
    config = lm.LMTrainConfig(batch_size=4, bptt=10, epochs=5, max_minutes=1e-9, max_tokens=10_000)
    assert lm.train_lm(model, ids, ids[:90], config, CPU, seed=0, start_id=9)["stopped"] == "time budget"


@pytest.mark.parametrize("value, message", [
    ("0", r"^matrix elmo: \[model\.elmo\] LMTrainConfig\.max_tokens=0: expected an int >= 1, or unset$"),
    ("1.5", r"^--set model\.elmo\.max_tokens=1\.5: model\.elmo\.max_tokens: expected int, got 1\.5$"),
])
def test_a_bad_token_budget_is_one_line_naming_the_key(value, message):
    with pytest.raises(BenchError, match=message):
        load_matrix("elmo", [f"model.elmo.max_tokens={value}"], models=["elmo"]).train_config("elmo")


def test_the_token_budget_is_part_of_the_cell_key_and_unset_keeps_the_old_keys():
    def key(settings: list[str], drop_max_tokens: bool = False) -> dict:
        block = config_block(load_matrix("elmo", settings, models=["elmo"]), "elmo", "fp32")
        if drop_max_tokens:  # a cell made before the field existed
            del block["train"]["max_tokens"]
        return cell_key("bilm", block, None, None, None)

    unset = key([])
    assert unset == key([], drop_max_tokens=True)
    budgeted = key(["model.elmo.max_tokens=12000000"])
    assert budgeted["hash"] != unset["hash"]
    assert [part for part in unset["parts"] if unset["parts"][part] != budgeted["parts"][part]] == ["config.train"]
