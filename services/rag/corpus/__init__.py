"""Corpus: loading documents, sentence segmentation with exact offsets, retrieval units."""

from .documents import Document, LoadReport, corpus_id
from .loaders import SUPPORTED_SUFFIXES, Limits, load_corpus
from .segment import Span, split_sentences
from .units import Segmentation, iter_unit_texts, sample_unit_texts, segment_corpus, unit_body, unit_texts

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "Limits",
    "LoadReport",
    "Segmentation",
    "Span",
    "corpus_id",
    "iter_unit_texts",
    "load_corpus",
    "sample_unit_texts",
    "segment_corpus",
    "split_sentences",
    "unit_body",
    "unit_texts",
]
