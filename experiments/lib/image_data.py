"""Small image-classification data: scikit-learn's digits and CIFAR-10 pickles.

Both loaders return an ``ImageData`` with NHWC float images, standardized per
channel with the training split's mean and standard deviation, and integer
labels. Nothing is downloaded:

  * ``load_digits``: the 1797 8×8 grey-scale digits bundled with scikit-learn
    (``sklearn.datasets.load_digits``), split at random by ``seed``.
  * ``load_cifar10(folder)``: CIFAR-10 in its standard Python pickle batches
    (``data_batch_1`` … ``data_batch_5``, ``test_batch``; each a dict with
    ``b"data"`` of shape (N, 3072) uint8, channel-major, and ``b"labels"``).
  * ``batch_indices``: shuffled minibatch index arrays for one epoch.

References:
  Krizhevsky, *Learning multiple layers of features from tiny images*, 2009
  (the CIFAR-10 file format).
"""

from __future__ import annotations

import os
import pickle
from typing import Iterator, NamedTuple

import numpy as np

__all__ = [
    "ImageData",
    "batch_indices",
    "load_cifar10",
    "load_digits",
    "load_images",
]

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


class ImageData(NamedTuple):
  """A train/test split of standardized NHWC images."""
  x_train: np.ndarray  # (N, H, W, C) float32, standardized.
  y_train: np.ndarray  # (N,) int32 class ids.
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  name: str


def _standardize(x_train, x_test):
  # Statistics from the training split only, per channel.
  mean = x_train.mean(axis=(0, 1, 2), keepdims=True)
  std = x_train.std(axis=(0, 1, 2), keepdims=True)
  std = np.where(std > 0, std, 1.0)
  return ((x_train - mean) / std).astype(np.float32), \
      ((x_test - mean) / std).astype(np.float32)


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> ImageData:
  """The scikit-learn digits (8×8×1, 10 classes), randomly split.

  Args:
    test_fraction: share of the 1797 images held out, in (0, 1).
    seed: seed of the split.

  Returns:
    An ``ImageData`` named ``"digits"``.
  """
  if not 0 < test_fraction < 1:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
  from sklearn.datasets import load_digits as _sk_digits  # Lazy: optional dep.
  bunch = _sk_digits()
  x = bunch.images.astype(np.float64)[..., None]
  y = bunch.target.astype(np.int32)
  perm = np.random.default_rng(seed).permutation(len(y))
  n_test = int(round(test_fraction * len(y)))
  test, train = perm[:n_test], perm[n_test:]
  x_train, x_test = _standardize(x[train], x[test])
  return ImageData(x_train, y[train], x_test, y[test], 10, "digits")


def _read_cifar_batch(path):
  with open(path, "rb") as f:
    try:
      d = pickle.load(f, encoding="bytes")
    except Exception as err:  # Corrupt or not a pickle: say which file.
      raise ValueError(f"{path!r} is not a CIFAR-10 pickle batch: {err}") \
          from None
  if not isinstance(d, dict):
    raise ValueError(f"{path!r} is not a CIFAR-10 batch (not a dict).")
  get = lambda k: d.get(k.encode(), d.get(k))
  data, labels = get("data"), get("labels")
  if data is None or labels is None:
    raise ValueError(f"{path!r} lacks the 'data' / 'labels' entries of a "
                     "CIFAR-10 batch.")
  data = np.asarray(data, dtype=np.uint8)
  if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
    raise ValueError(
        f"{path!r}: data must have shape (N, 3072) with N labels, got "
        f"{data.shape} and {len(labels)} labels.")
  # Rows are channel-major 3×32×32 (all red, then green, then blue).
  x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return x, np.asarray(labels, dtype=np.int32)


def load_cifar10(folder: str | os.PathLike) -> ImageData:
  """CIFAR-10 from the standard Python pickle batches in ``folder``.

  Reads whichever of ``data_batch_1`` … ``data_batch_5`` are present (at least
  one) and ``test_batch``.

  Args:
    folder: directory holding the batches (e.g. ``cifar-10-batches-py``).

  Returns:
    An ``ImageData`` named ``"cifar10"`` (32×32×3, 10 classes).

  Raises:
    ValueError: the folder or its batches are missing or malformed.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise ValueError(f"data folder {folder!r} does not exist.")
  train = [os.path.join(folder, b) for b in CIFAR10_TRAIN
           if os.path.isfile(os.path.join(folder, b))]
  test = os.path.join(folder, CIFAR10_TEST)
  if not train or not os.path.isfile(test):
    raise ValueError(
        f"{folder!r} must hold CIFAR-10 python batches: at least one of "
        f"{CIFAR10_TRAIN} and {CIFAR10_TEST!r}.")
  parts = [_read_cifar_batch(p) for p in train]
  x_train = np.concatenate([p[0] for p in parts]).astype(np.float64) / 255.0
  y_train = np.concatenate([p[1] for p in parts])
  x_test, y_test = _read_cifar_batch(test)
  x_train, x_test = _standardize(x_train, x_test.astype(np.float64) / 255.0)
  return ImageData(x_train, y_train, x_test, y_test, 10, "cifar10")


def load_images(data: str | os.PathLike | None = None, *,
                seed: int = 0) -> ImageData:
  """``load_digits(seed=seed)`` if ``data`` is None, else ``load_cifar10``."""
  return load_digits(seed=seed) if data is None else load_cifar10(data)


def batch_indices(rng: np.random.Generator, n: int, batch_size: int,
                  *, drop_last: bool = True) -> Iterator[np.ndarray]:
  """Shuffled index arrays covering ``range(n)`` once (one epoch)."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  perm = rng.permutation(n)
  stop = n - n % batch_size if drop_last and n >= batch_size else n
  for i in range(0, stop, batch_size):
    yield perm[i:i + batch_size]
