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


def _pick_task(rng, n):
    """Sources of 6 random names; the target is the name after "winner": only readable from the source."""
    names = [
        "anna",
        "boris",
        "chen",
        "dara",
        "emil",
        "farid",
        "greta",
        "hugo",
        "ines",
        "jonas",
        "kira",
        "lars",
        "mona",
        "nils",
        "olga",
        "piet",
    ]
    sources, targets = [], []
    for _ in range(n):
        words = rng.sample(names, 6)
        k = rng.randrange(5)
        sources.append(" ".join([*words[:k], "winner", *words[k:]]))
        targets.append(words[k])
    return sources, targets


def test_from_scratch_model_learns_to_read_its_source():
    """A short training run must make the decoder use the encoder: the loss with the right sources falls far
    below the loss with the sources shuffled between rows (BART's 0.02 init at small widths failed this: the
    encoder collapsed towards a constant and the loss barely depended on the source)."""
    import random

    from conseq.data.batching import collate, encode_pairs

    rng = random.Random(0)
    train_src, train_tgt = _pick_task(rng, 2000)
    tok = train_tokenizer([*train_src, "winner"], vocab_size=300, min_frequency=1)
    model = build_tiny_model(tok, d_model=64, encoder_layers=1, decoder_layers=1, ffn_dim=128, dropout=0.0)
    enc = encode_pairs(tok, train_src, train_tgt, max_source_length=32, max_target_length=8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _step in range(150):
        rows = [rng.randrange(len(train_src)) for _ in range(32)]
        batch = collate([enc.input_ids[i] for i in rows], [enc.labels[i] for i in rows], tok.pad_token_id)
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    test_src, test_tgt = _pick_task(random.Random(1), 64)
    held = encode_pairs(tok, test_src, test_tgt, max_source_length=32, max_target_length=8)
    model.eval()
    with torch.no_grad():
        right = model(**collate(held.input_ids, held.labels, tok.pad_token_id)).loss.item()
        shuffled = model(**collate(held.input_ids[1:] + held.input_ids[:1], held.labels, tok.pad_token_id)).loss
    assert right < 0.5 * shuffled.item(), (right, shuffled.item())


def test_shared_source_training_equals_one_source_copy_per_target(tokenizer):
    """QAGen trains with each passage encoded once per batch; loss and every gradient must equal the plain
    forward over one padded source copy per question-answer pair."""
    from conseq.data.batching import collate, collate_shared_sources
    from conseq.training import SharedSourceSeq2Seq, shared_source_forward, smoothed_nll_loss

    torch.manual_seed(0)
    model = build_tiny_model(tokenizer, d_model=32, encoder_layers=2, decoder_layers=1, ffn_dim=64, dropout=0.0)
    passages = ["Anna Berg won the final in Oslo on Sunday.", "Rain fell.", "The mayor of Lund opened a bridge."]
    pairs = [(0, "who won?<sep>Anna Berg"), (1, "what fell?<sep>Rain"), (0, "where?<sep>Oslo"), (2, "who?<sep>mayor")]
    sources = [tokenizer(passages[i])["input_ids"] for i, _ in pairs]
    targets = [tokenizer(text_target=t)["input_ids"] for _, t in pairs]

    shared = collate_shared_sources(sources, targets, tokenizer.pad_token_id)
    assert shared["input_ids"].shape[0] == 3 and shared["source_index"].tolist() == [0, 1, 0, 2]

    def loss_and_grads(loss_fn, module, batch):
        model.zero_grad()
        loss, _ = loss_fn(module, batch)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_a, grads_a = loss_and_grads(smoothed_nll_loss(0.1, shared_source_forward), SharedSourceSeq2Seq(model), shared)
    loss_b, grads_b = loss_and_grads(smoothed_nll_loss(0.1), model, collate(sources, targets, tokenizer.pad_token_id))
    assert loss_a == pytest.approx(loss_b, abs=1e-5)
    assert grads_a.keys() == grads_b.keys()
    for name, grad in grads_a.items():
        torch.testing.assert_close(grad, grads_b[name], atol=1e-5, rtol=1e-4, msg=name)


def test_shared_source_validation_equals_one_source_copy_per_target(tokenizer, tmp_path):
    """QAGen's validation NLL encodes each passage once per batch: the same value as one copy per pair."""
    from conseq import runtime
    from conseq.data.batching import collate, collate_shared_sources
    from conseq.training import SharedSourceSeq2Seq, shared_source_forward, validation_nll

    torch.manual_seed(0)
    model = build_tiny_model(tokenizer, d_model=32, encoder_layers=2, decoder_layers=1, ffn_dim=64, dropout=0.0)
    model.eval()
    passages = ["Anna Berg won the final in Oslo on Sunday.", "Rain fell.", "The mayor of Lund opened a bridge."]
    pairs = [(0, "who won?<sep>Anna Berg"), (0, "where?<sep>Oslo"), (1, "what fell?<sep>Rain"), (2, "who?<sep>mayor")]
    examples = [(tokenizer(passages[i])["input_ids"], tokenizer(text_target=t)["input_ids"]) for i, t in pairs]
    rt = runtime.start(run_dir=tmp_path, seed=0)

    def pad(collate_fn):
        return lambda items: collate_fn([x for x, _ in items], [y for _, y in items], tokenizer.pad_token_id)

    shared_model = SharedSourceSeq2Seq(model)
    shared = validation_nll(shared_model, rt, examples, pad(collate_shared_sources), 3, shared_source_forward)
    plain = validation_nll(model, rt, examples, pad(collate), 3)
    assert shared == pytest.approx(plain, abs=1e-5) and plain > 0
