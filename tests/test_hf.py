"""attnlab.hf: BERT-family checkpoints in the packed encoder equal ``transformers`` on ragged
batches (every layer's output and every attention map, fp32, 1e-5); unsupported
configurations are refused by name; word pieces round-trip through tokenizer.json."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.errors import UserError
from attnlab.hf import load_encoder, load_tokenizer, parse_config
from tiny_hf import FAMILIES, POSITIONS, VOCAB, hf_model, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-5


def ragged_batch(pad_id: int, lengths=(9, 3, 17, 1), seed: int = 1):
    """ids (B, N) with padding ``pad_id`` beyond each length, the lengths, the boolean mask."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    ids = torch.randint(3, VOCAB, (len(lengths), int(lengths.max())), generator=generator)
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    ids[~mask] = pad_id
    return ids, lengths, mask


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request, tmp_path_factory):
    """(transformers model, attnlab encoder loaded from its saved directory)."""
    model = hf_model(request.param)
    directory = save_checkpoint(model, tmp_path_factory.mktemp(request.param))
    return model, load_encoder(directory)


def test_every_layer_and_attention_map_equal_transformers(pair):
    model, encoder = pair
    ids, lengths, mask = ragged_batch(model.config.pad_token_id)
    types = (torch.arange(ids.shape[1]) >= 4).long().expand_as(ids) if encoder.embeddings.token_type else None
    extra = {} if types is None else {"token_type_ids": types}
    with torch.inference_mode():
        theirs = model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True, output_attentions=True, **extra)
        ours = encoder(ids, lengths, return_hidden=True, return_weights=True, **extra)
    assert len(ours.hidden_states) == len(theirs.hidden_states) == model.config.num_hidden_layers + 1
    for layer, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states)):
        assert b[mask].abs().max() > 0.5  # not a degenerate checkpoint
        torch.testing.assert_close(a[mask], b[mask], rtol=0, atol=TOL, msg=f"hidden state {layer}")
        assert a[~mask].abs().max() == 0 if (~mask).any() else True
    torch.testing.assert_close(ours.last_hidden_state[mask], theirs.hidden_states[-1][mask], rtol=0, atol=TOL)
    for layer, (per_sequence, full) in enumerate(zip(ours.attentions, theirs.attentions)):
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(per_sequence[b], full[b, :, :n, :n], rtol=0, atol=TOL, msg=f"layer {layer}")
        assert full[0, :, : lengths[0], : lengths[0]].std() > 0.02  # maps far from uniform


def test_packed_form_equals_the_padded_form(pair):
    model, encoder = pair
    ids, lengths, mask = ragged_batch(model.config.pad_token_id, seed=2)
    with torch.inference_mode():
        padded = encoder(ids, lengths).last_hidden_state
        packed = encoder.forward_packed(ids[mask], torch.tensor([0, *lengths.cumsum(0).tolist()]))
    torch.testing.assert_close(packed.last_hidden_state, padded[mask], rtol=0, atol=0)


def test_roberta_positions_start_after_the_padding_id_and_skip_inner_padding(tmp_path):
    encoder = load_encoder(save_checkpoint(hf_model("roberta"), tmp_path))
    pad = encoder.config.pad_token_id  # 1: positions start at 2
    ids = torch.tensor([5, 6, 7, 8, pad, 9])
    positions = encoder.embeddings.positions(ids, torch.tensor([0, 3, 6]))
    assert positions.tolist() == [2, 3, 4, 2, pad, 3]


def test_too_long_and_out_of_vocabulary_inputs_are_refused(pair):
    _, encoder = pair
    longest = encoder.config.longest
    assert longest == POSITIONS - encoder.config.position_offset
    with pytest.raises(ValueError, match=f"{longest + 1} word pieces; this checkpoint takes at most {longest}"):
        encoder.forward_packed(torch.full((longest + 1,), 5), torch.tensor([0, longest + 1]))
    with pytest.raises(ValueError, match=rf"input_ids must be in \[0, {VOCAB}\)"):
        encoder.forward_packed(torch.tensor([3, VOCAB]), torch.tensor([0, 2]))


# -- refusals: no transformers needed ------------------------------------------------------

BERT = {"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
        "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 12}


@pytest.mark.parametrize("change, message", [
    ({"model_type": "deberta-v2"}, "model_type 'deberta-v2' is not supported; attnlab.hf loads bert, roberta"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key' is not supported"),
    ({"hidden_act": "gelu_new"}, "activation 'gelu_new' is not supported (only 'gelu')"),
    ({"is_decoder": True}, "is_decoder=true is a decoder configuration"),
    ({"add_cross_attention": True}, "add_cross_attention=true is a decoder configuration"),
    ({"model_type": "distilbert", "activation": "relu"}, "activation 'relu' is not supported"),
])
def test_unsupported_configurations_are_refused_by_name(change, message):
    with pytest.raises(UserError) as error:
        parse_config({**BERT, **change}, "ckpt/config.json")
    assert str(error.value).startswith("ckpt/config.json: ")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_roberta_offset_and_distilbert_names_are_read():
    roberta = parse_config({**BERT, "model_type": "roberta", "pad_token_id": 1})
    assert (roberta.position_offset, roberta.longest, roberta.type_vocab_size) == (2, 10, 2)
    distil = parse_config({"model_type": "distilbert", "dim": 8, "n_heads": 2, "n_layers": 3, "hidden_dim": 16,
                           "vocab_size": 10, "max_position_embeddings": 12})
    assert (distil.width, distil.heads, distil.layers, distil.d_ff, distil.type_vocab_size) == (8, 2, 3, 16, 0)
    assert distil.layer_norm_eps == 1e-12 and distil.position_offset == 0


def test_missing_files_and_pickles_are_refused(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        load_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(BERT))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(UserError, match="no model.safetensors .*never pytorch_model.bin, a pickle"):
        load_encoder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="model.safetensors: not a readable safetensors file"):
        load_encoder(tmp_path)


def test_missing_and_misshapen_weights_are_named(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "config.json").write_text(json.dumps(BERT))
    save_file({"embeddings.word_embeddings.weight": torch.zeros(10, 8)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match="no 'embeddings.position_embeddings.weight'"):
        load_encoder(tmp_path)
    save_file({"electra.embeddings.other.weight": torch.zeros(10, 8)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match="the weights have no 'embeddings.word_embeddings.weight': not a bert encoder"):
        load_encoder(tmp_path)


def test_weights_of_another_shape_than_config_json_are_named(tmp_path):
    save_checkpoint(hf_model("bert"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "vocab_size": VOCAB + 1}))
    with pytest.raises(UserError, match=rf"model.safetensors: weight embeddings.word_embeddings.weight has shape "
                                        rf"\({VOCAB}, 32\), the model expects \({VOCAB + 1}, 32\)"):
        load_encoder(tmp_path)


# -- word pieces ---------------------------------------------------------------------------

def write_wordpiece_tokenizer(directory):
    """A tiny BERT-style WordPiece tokenizer.json built with ``tokenizers`` (no download)."""
    tokenizers = pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "un", "##believ", "##able", "."]
    tokenizer = tokenizers.Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.add_special_tokens(vocab[:4])
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.save(str(directory / "tokenizer.json"))
    return vocab


def test_word_pieces_round_trip(tmp_path):
    vocab = write_wordpiece_tokenizer(tmp_path)
    pieces = load_tokenizer(tmp_path)
    encoded = pieces.encode("The cat sat on the unbelievable mat.")
    assert encoded.tokens == ["[CLS]", "the", "cat", "sat", "on", "the", "un", "##believ", "##able", "mat", ".", "[SEP]"]
    assert encoded.ids == [vocab.index(t) for t in encoded.tokens]
    assert pieces.decode(encoded.ids) == "the cat sat on the unbelievable mat."
    words = pieces.encode(["The", "unbelievable", "cat", "zzz"])
    assert words.word_ids == [None, 0, 1, 1, 1, 2, 3, None]
    assert words.first_pieces() == [1, 2, 5, 6] and words.tokens[6] == "[UNK]"
    ids, cu = pieces.pack(["the cat", "unbelievable"])
    assert ids.tolist() == [2, 4, 5, 3, 2, 9, 10, 11, 3] and cu.tolist() == [0, 4, 9]


def test_a_missing_tokenizer_is_named(tmp_path):
    pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")
    with pytest.raises(UserError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
