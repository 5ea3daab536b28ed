"""Tests run offline: the paper's files are read from ../shared/data (see its README for provenance)."""

import os
from pathlib import Path

os.environ.setdefault("LIMR_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
