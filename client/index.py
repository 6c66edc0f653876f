"""LanceDB's index configurations (`lancedb.index`), for `create_index(column, config=...)`.

The store builds FAISS indexes: `IvfFlat` → IVF_FLAT, `IvfPq` → IVF_PQ (8-bit codes), `HnswFlat` → HNSW
over full vectors (one graph: `num_partitions` does not apply); `FTS` → Lance's full-text (BM25) inverted index.
What it cannot build is refused here, before any call, rather than built as something else: HNSW over
quantized vectors (`HnswSq`, `HnswPq`: use `HnswFlat`), PQ codes of other widths, and scalar indexes (the
store evaluates filters from its own per-fragment column state). Training knobs (`max_iterations`,
`sample_rate`, `target_partition_size`) are LanceDB's; the store trains with FAISS's k-means and warns when
one is given other than LanceDB's default.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any, Literal, Union

from vectorlane_contract.store.v1 import store_service_pb2 as pb

DistanceType = Literal["l2", "cosine", "dot"]
_TRAINING_DEFAULTS = {"max_iterations": 50, "sample_rate": 256, "target_partition_size": None}


@dataclass
class _Partitioned:
    """What LanceDB's vector index configurations share: the metric, and how the store may partition."""
    distance_type: DistanceType = "l2"
    num_partitions: int | None = None
    max_iterations: int = 50
    sample_rate: int = 256
    target_partition_size: int | None = None


@dataclass
class IvfFlat(_Partitioned):
    """Inverted file over full vectors: `num_partitions` lists (None: about sqrt(rows))."""


@dataclass
class IvfPq(_Partitioned):
    """Inverted file over product-quantized vectors (`num_sub_vectors` codes of `num_bits` each)."""
    num_sub_vectors: int | None = None
    num_bits: int = 8


@dataclass
class HnswFlat(_Partitioned):
    """A navigable small-world graph over full vectors (`m` neighbours, `ef_construction` build breadth)."""
    m: int = 20
    ef_construction: int = 300


@dataclass
class HnswSq(HnswFlat):
    """LanceDB's HNSW over scalar-quantized vectors; not built by the store (use HnswFlat)."""


@dataclass
class HnswPq(HnswFlat):
    """LanceDB's HNSW over product-quantized vectors; not built by the store (use HnswFlat)."""
    num_sub_vectors: int | None = None
    num_bits: int = 8


@dataclass
class BTree:
    """LanceDB's scalar index; the store filters without one."""


@dataclass
class Bitmap:
    """LanceDB's scalar index; the store filters without one."""


@dataclass
class LabelList:
    """LanceDB's scalar index over list columns; the store filters without one."""


@dataclass
class FTS:
    """LanceDB's full-text (BM25) index of a string column, with its tokenizer settings: Lance's inverted
    index, built and searched by the store (`table.create_index("text", config=FTS(with_position=True))`)."""
    with_position: bool = False
    base_tokenizer: str = "simple"
    language: str = "English"
    max_token_length: int | None = 40
    lower_case: bool = True
    stem: bool = True
    remove_stop_words: bool = True
    custom_stop_words: list[str] | None = None
    ascii_folding: bool = True
    ngram_min_length: int = 3
    ngram_max_length: int = 3
    prefix_only: bool = False
    block_size: int = 128
    memory_limit: int | None = None  # MiB for this build, shared by its workers (not kept with the index)
    num_workers: int | None = None  # this build's workers (not kept with the index)

    def to_proto(self) -> pb.FtsParams:
        if self.block_size not in (128, 256):
            raise ValueError(f"block_size must be 128 or 256, not {self.block_size}")
        if self.custom_stop_words == []:
            raise ValueError("custom_stop_words=[]: pass remove_stop_words=False to keep every word")
        return self.tokenizer_proto(with_position=self.with_position, block_size=self.block_size,
                                    memory_limit=self.memory_limit, num_workers=self.num_workers or 0)

    def tokenizer_proto(self, **build: Any) -> pb.FtsParams:
        """The tokenizer settings (and `build`'s FtsParams fields), checked as LanceDB checks them."""
        check_language(self.language)
        if self.custom_stop_words is not None and not all(isinstance(w, str) for w in self.custom_stop_words):
            kind = next(type(w).__name__ for w in self.custom_stop_words if not isinstance(w, str))
            raise TypeError(f"custom_stop_words must hold strings, not {kind}")
        return pb.FtsParams(**build,
            base_tokenizer=self.base_tokenizer, language=self.language,
            max_token_length=-1 if self.max_token_length is None else self.max_token_length,
            lower_case=self.lower_case, stem=self.stem, remove_stop_words=self.remove_stop_words,
            ascii_folding=self.ascii_folding, ngram_min_length=self.ngram_min_length,
            ngram_max_length=self.ngram_max_length, prefix_only=self.prefix_only,
            custom_stop_words=list(self.custom_stop_words or ()))


LANGUAGES = ("Arabic", "Danish", "Dutch", "English", "Finnish", "French", "German", "Greek", "Hungarian", "Italian",
             "Norwegian", "Portuguese", "Romanian", "Russian", "Spanish", "Swedish", "Tamil", "Turkish")


def check_language(language: str) -> None:
    """LanceDB's own check (the store checks too), with its exact words: a ValueError before any call."""
    if language.capitalize() not in LANGUAGES:
        raise ValueError(f"LanceDB does not support the requested language: {language!r}\n"
                         f"Supported languages: {', '.join(LANGUAGES)}")


_LANGUAGES = {"ar": "Arabic", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
              "fi": "Finnish", "fr": "French", "hu": "Hungarian", "it": "Italian", "nl": "Dutch", "no": "Norwegian",
              "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "ta": "Tamil", "tr": "Turkish"}


def fts_from_tokenizer_name(name: str) -> dict[str, Any]:
    """LanceDB's `tokenizer_name` ("default", "raw", "whitespace", "en_stem", ...) as FTS settings."""
    plain = {"max_token_length": None, "lower_case": False, "stem": False, "remove_stop_words": False,
             "ascii_folding": False}
    if name == "default":
        return {"base_tokenizer": "simple", "max_token_length": 40, "lower_case": True, "stem": False,
                "remove_stop_words": False, "ascii_folding": False}
    if name in ("raw", "whitespace"):
        return {"base_tokenizer": name, **plain}
    if len(name) != 7 or not name.endswith("_stem") or name[:2] not in _LANGUAGES:
        raise ValueError(f"Invalid tokenizer name {name}")
    return {"base_tokenizer": "simple", "language": _LANGUAGES[name[:2]], "max_token_length": 40,
            "lower_case": True, "stem": True, "remove_stop_words": False, "ascii_folding": False}


IndexConfig = Union[IvfFlat, IvfPq, HnswFlat, HnswSq, HnswPq, BTree, Bitmap, LabelList, FTS]


@dataclass(frozen=True)
class VectorIndexPlan:
    """What a config asks the store to build (the CreateIndexRequest fields it sets; 0: the store picks)."""
    index_type: str
    metric: str
    num_partitions: int = 0
    num_sub_vectors: int = 0
    m: int = 0
    ef_construction: int = 0


def plan(config: Any) -> VectorIndexPlan:
    """The index `config` asks for, or ValueError for one the store cannot build as asked."""
    if isinstance(config, (BTree, Bitmap, LabelList)):
        raise ValueError(f"{type(config).__name__}: the store has no scalar indexes; it evaluates filters from its "
                         "own per-fragment column state, so filters need none")
    if isinstance(config, FTS):
        raise TypeError("this is a bug: an FTS config is planned by FTS.to_proto, not as a vector index")
    if isinstance(config, (HnswSq, HnswPq)):
        raise ValueError(f"{type(config).__name__}: the store's HNSW keeps full vectors; use HnswFlat(m=..., "
                         "ef_construction=...), or IvfPq for compressed vectors")
    if not isinstance(config, (IvfFlat, IvfPq, HnswFlat)):
        raise TypeError(f"config must be one of vectorlane.index's configurations, not {type(config).__name__}")
    warn_training(**{f.name: getattr(config, f.name) for f in fields(config) if f.name in _TRAINING_DEFAULTS})
    partitions = config.num_partitions or 0
    if isinstance(config, IvfPq):
        check_bits(config.num_bits)
        return VectorIndexPlan("IVF_PQ", config.distance_type, partitions, config.num_sub_vectors or 0)
    if isinstance(config, IvfFlat):
        return VectorIndexPlan("IVF_FLAT", config.distance_type, partitions)
    return VectorIndexPlan("HNSW", config.distance_type, m=config.m, ef_construction=config.ef_construction)


def check_bits(num_bits: int) -> None:
    if num_bits != 8:
        raise ValueError(f"num_bits={num_bits}: the store's IVF_PQ codes are 8 bits per sub-vector")


def warn_training(**given: Any) -> None:
    changed = [name for name, value in given.items() if value != _TRAINING_DEFAULTS.get(name, value)]
    if changed:
        warnings.warn(f"{', '.join(changed)}: the store trains with FAISS's k-means; LanceDB's training settings "
                      "are not applied", stacklevel=3)


__all__ = ["FTS", "LANGUAGES", "Bitmap", "BTree", "HnswFlat", "HnswPq", "HnswSq", "IndexConfig", "IvfFlat", "IvfPq",
           "LabelList", "check_language",
           "fts_from_tokenizer_name",
           "VectorIndexPlan", "check_bits", "plan", "warn_training"]
