"""JSON Schemas of results.json and a bundle's summary.json, generated from the models, so that
a vendor's tooling can validate what minikf wrote without reading its code.

The generated files are published in the package (schemas/, one per layout and major version);
a test checks they match the models. Regenerate: `python -m minikf.results.schema`.
"""

from __future__ import annotations

import json
from pathlib import Path

from minikf.results.model import SCHEMA_VERSION, ConformanceReport, RunResult
from minikf.runtime import files

SCHEMA_DIR = Path(__file__).parent / "schemas"
_MAJOR = SCHEMA_VERSION.split(".")[0]
DOCUMENTS = {f"results-v{_MAJOR}.schema.json": RunResult,
             f"conformance-summary-v{_MAJOR}.schema.json": ConformanceReport}


def json_schema(model: type) -> dict:
    """The JSON Schema (draft 2020-12) of one model, as pydantic generates it."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(model).json_schema(mode="serialization")
    # A document of another major layout must not validate: the version is required and pinned.
    schema["properties"]["schema_version"] = {
        "type": "string", "pattern": rf"^{_MAJOR}\.[0-9]+$", "title": "Schema Version",
        "description": "the layout of this document (major.minor)"}
    schema["required"] = sorted({*schema.get("required", []), "schema_version"})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://minikf.dev/schemas/{_file_for(model)}",
            "description": f"minikf {model.__name__}, layout {SCHEMA_VERSION}", **schema}


def _file_for(model: type) -> str:
    return next(name for name, m in DOCUMENTS.items() if m is model)


def schema_path(model: type) -> Path:
    return SCHEMA_DIR / _file_for(model)


def render(model: type) -> str:
    return json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in DOCUMENTS.items():
        files.write_text(directory / name, render(model))
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path)
