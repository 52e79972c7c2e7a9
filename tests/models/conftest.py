import numpy as np
import pytest

from detector.models.features import FeatureSpec
from detector.models.train import TrainingData, fit


def normal_device(rows: int = 800, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    return np.column_stack([20 + np.sin(t / 20) + rng.normal(0, 0.1, rows),
                            5 + 0.5 * np.cos(t / 20) + rng.normal(0, 0.05, rows)])


@pytest.fixture(scope="session")
def device_model():
    values = normal_device()
    data = TrainingData([values], np.arange(len(values), dtype=float), ("pressure", "temp"),
                        "device", "plant/pump")
    return fit("kmeans", data, FeatureSpec((4, 8), (1,)), {"n_clusters": 6}, seed=3)


@pytest.fixture(scope="session")
def stream_model():
    values = normal_device()[:, :1]
    data = TrainingData([values], np.arange(len(values), dtype=float), ("pressure",), "stream",
                        "plant/pump/pressure")
    return fit("isolation_forest", data, FeatureSpec((4, 8), (1,)), {"n_estimators": 50}, seed=3)
