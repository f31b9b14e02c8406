"""Model names → model files: the catalogue, the local search path, the cache and verified downloads.

``app.model`` in a pipeline file is a path or a catalogue name. :func:`resolve_model` looks a name up in the
folders of ``TRTAPPS_MODEL_PATH``, then in the cache, then in a pip package embedding the model, and finally
downloads it (unless ``TRTAPPS_OFFLINE=1``), checking every file it did not get from the user against its
sha256. ``trtapps models list|pull|path|verify`` is the command line over the same functions, and
``docs/models.md`` describes the catalogue.

* :mod:`trtapps.zoo.catalog`: the entries (:class:`ZooModel`, :data:`MODELS`).
* :mod:`trtapps.zoo.store`: lookup order, the cache and its index, :func:`pull`, :func:`verify`.
* :mod:`trtapps.zoo.download`: HTTP with resume, retries, mirrors, checksums and a file lock.
"""

from __future__ import annotations

from trtapps.zoo.catalog import MODELS, ZooModel
from trtapps.zoo.download import DownloadError, file_lock, sha256_of
from trtapps.zoo.store import (
    Check,
    Located,
    cache_dir,
    find_local,
    looks_like_path,
    mirrors,
    model_entry,
    offline,
    pull,
    read_index,
    resolve_model,
    search_path,
    sources,
    verify,
)

__all__ = [
    "MODELS",
    "Check",
    "DownloadError",
    "Located",
    "ZooModel",
    "cache_dir",
    "file_lock",
    "find_local",
    "looks_like_path",
    "mirrors",
    "model_entry",
    "offline",
    "pull",
    "read_index",
    "resolve_model",
    "search_path",
    "sha256_of",
    "sources",
    "verify",
]
