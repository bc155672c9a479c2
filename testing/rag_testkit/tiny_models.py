"""Tiny randomly initialised models of the production architectures, made offline with `save_pretrained`.

- e5-architecture embedder: BertModel + mean pooling (as intfloat/e5-base-v2), WordPiece tokenizer.
- bge-reranker-architecture cross-encoder: XLMRobertaForSequenceClassification, one label, Unigram tokenizer.
Both tokenizers are trained here on a few sentences, so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Question answering systems cite verbatim evidence sentences from documents.",
    "Cats sleep most of the day; dogs bark at the postman every morning.",
    "The Eiffel Tower is in Paris, France, and was completed in 1889.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Water boils at 100 degrees Celsius at sea level.",
    "query: passage: what who when where why how which is are was were",
] * 20


def make_tiny_e5(folder: Path, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(TRAINING_TEXT, WordPieceTrainer(vocab_size=400, special_tokens=specials))
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]"))
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=128, do_lower_case=True)
    fast.save_pretrained(folder)
    return save_e5_embedder(
        folder,
        vocab_size=tok.get_vocab_size(),
        hidden=32,
        layers=2,
        heads=2,
        intermediate=64,
        max_length=128,
        seed=seed,
    )


def save_e5_embedder(
    folder: Path,
    *,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_length: int,
    seed: int = 0,
) -> Path:
    """e5's architecture (BertModel + mean pooling, as a sentence-transformers folder) with random weights,
    beside the tokenizer already saved in `folder`. Any size: tiny for tests, e5-base for benchmarks."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_length,
        pad_token_id=0,
    )
    BertModel(config).eval().save_pretrained(folder)
    transformer = models.Transformer(str(folder), max_seq_length=max_length)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    return folder


def make_tiny_bge_reranker(folder: Path, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer

    tok = Tokenizer(Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(
        TRAINING_TEXT, UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    )
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return save_xlmr_cross_encoder(
        folder, tok, seed=seed, hidden=32, layers=2, heads=2, intermediate=64, max_length=128
    )


def save_xlmr_cross_encoder(
    folder: Path,
    tokenizer: Any,
    *,
    seed: int = 0,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_length: int,
) -> Path:
    """A randomly initialised XLMRobertaForSequenceClassification (one label, as bge-reranker) with `tokenizer`
    (a `tokenizers.Tokenizer` using XLM-R's special ids) — from test-sized to bge-reranker-base-sized."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    XLMRobertaTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_length,
    ).save_pretrained(folder)
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
    )
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


if __name__ == "__main__":  # `python -m rag_testkit.tiny_models DIR` makes both, for manual runs
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")
    print(make_tiny_e5(root / "tiny-e5-bert"), make_tiny_bge_reranker(root / "tiny-bge-reranker"))
