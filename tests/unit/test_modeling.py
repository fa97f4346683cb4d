"""The tiny from-scratch models and the <sep> handling go through the same from_pretrained path as hub models."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from conseq.modeling import SEP_TOKEN, build_tiny_model, ensure_sep_token, load_model, train_tokenizer
from tests.conftest import corpus


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(corpus(), vocab_size=400)


def test_tokenizer_frames_like_bart_and_keeps_sep_whole(tokenizer):
    ids = tokenizer(f"who won{SEP_TOKEN}Anna Berg")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert ids.count(tokenizer.convert_tokens_to_ids(SEP_TOKEN)) == 1


@pytest.mark.parametrize("arch", ["bart", "mbart"])
def test_tiny_model_round_trips_through_from_pretrained(tmp_path, tokenizer, arch):
    model = build_tiny_model(tokenizer, d_model=32, encoder_layers=1, decoder_layers=1, ffn_dim=64, arch=arch)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path)
    batch = tok(["Anna Berg won in Oslo."], return_tensors="pt")
    out = loaded.generate(**batch, max_new_tokens=5, num_beams=2)
    # Decoding starts from </s> and forces <s>, as bart-large does.
    assert out[0, 0].item() == tok.eos_token_id and out[0, 1].item() == tok.bos_token_id
    with torch.no_grad():
        assert torch.allclose(
            loaded(**batch, decoder_input_ids=out).logits, model.eval()(**batch, decoder_input_ids=out).logits
        )


def test_ensure_sep_token_adds_and_resizes(tokenizer):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    plain = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    assert SEP_TOKEN not in plain.get_vocab()
    model = build_tiny_model(plain, d_model=32, encoder_layers=1, decoder_layers=1, ffn_dim=64)
    rows = model.get_input_embeddings().weight.shape[0]
    sep = ensure_sep_token(model, plain)
    assert plain.convert_ids_to_tokens(sep) == SEP_TOKEN
    assert model.get_input_embeddings().weight.shape[0] == rows + 1
    assert ensure_sep_token(model, plain) == sep  # idempotent


def test_missing_local_model_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model at"):
        load_model(str(tmp_path / "nowhere"))
