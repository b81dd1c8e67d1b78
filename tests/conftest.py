import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Real data for the tests marked `data`; override with SIN_DATA_ROOT.
DATA_ROOT = Path(os.environ.get("SIN_DATA_ROOT", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


def data_path(*parts) -> Path:
    """Path under the shared data root, or skip the test when it is not there."""
    p = DATA_ROOT.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"dataset not available: {p}")
    return p


@pytest.fixture
def rng():
    return np.random.default_rng(0)
