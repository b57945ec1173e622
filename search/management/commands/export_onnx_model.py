"""Exports the shipped all-MiniLM-L6-v2 weights to the ONNX files the local embedding
provider runs (fp32 and int8), into LOCAL_EMBEDDING_MODELS_DIR; see search.onnx_export.

    manage.py export_onnx_model [--force] [--model NAME]

Skipped for a model whose files are up to date (same source weights, same exporter).
Needs torch and sentence-transformers (requirements-export.txt): the development setup and
the image's export stage have them, the production runtime does not.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from search import onnx_export


class Command(BaseCommand):
    help = "Export the shipped MiniLM weights to ONNX (fp32 and int8) for the local embedding provider."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Export even when the files are up to date.")
        parser.add_argument("--model", action="append", choices=sorted(onnx_export.MODELS), help="Only this model.")

    def handle(self, *args, **options):
        out = settings.LOCAL_EMBEDDING_MODELS_DIR
        try:
            results = onnx_export.export(out, force=options["force"], names=options["model"], log=self.stdout.write)
        except ImportError as exc:
            raise CommandError(
                f"Exporting needs torch and sentence-transformers (pip install -r requirements-export.txt): {exc}"
            ) from exc
        for name, outcome in results.items():
            self.stdout.write(f"{name}: {outcome} ({out / name})")
