"""Where the model's files come from: a local folder, or a Hugging Face repo fetched once into its cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsUnavailable

DEFAULT_WEIGHTS = "stabilityai/TripoSR"
# The hub commit that added config.yaml and model.ckpt; pinned so a changed upload cannot surprise us.
DEFAULT_REVISION = "c1cf7716aed5aa6c1c5e174657791ef0e1327bde"
DEFAULT_CHECKPOINT_SHA256 = "429e2c6b22a0923967459de24d67f05962b235f79cde6b032aa7ed2ffcd970ee"

CONFIG_NAME = "config.yaml"
CHECKPOINT_NAME = "model.ckpt"
VIT_CONFIG_NAME = "vit_config.json"


@dataclass(frozen=True)
class WeightFiles:
    config: Path
    checkpoint: Path
    vit_config: Path | None
    source: str  # for messages: the folder, or "repo@revision"


def is_local(weights: str) -> bool:
    """A path (existing, or written like one) rather than a hub repo id such as `owner/name`."""
    path = Path(weights).expanduser()
    return path.exists() or weights.startswith((".", "/", "~")) or weights.count("/") != 1


def locate_weights(weights: str = DEFAULT_WEIGHTS, revision: str | None = None) -> WeightFiles:
    """The model's files, downloading them from the hub on first use."""
    if is_local(weights):
        return local_weights(Path(weights).expanduser())
    cached = cached_weights(weights, revision)
    return cached if cached is not None else download_weights(weights, revision)


def local_weights(folder: Path) -> WeightFiles:
    if not folder.is_dir():
        raise WeightsUnavailable(
            f"The weights folder {folder} does not exist. Pass a folder holding {CONFIG_NAME} and "
            f"{CHECKPOINT_NAME}, or a Hugging Face repo id such as {DEFAULT_WEIGHTS}."
        )
    missing = [name for name in (CONFIG_NAME, CHECKPOINT_NAME) if not (folder / name).is_file()]
    if missing:
        raise WeightsUnavailable(
            f"The weights folder {folder} lacks {' and '.join(missing)}; it needs {CONFIG_NAME} and "
            f"{CHECKPOINT_NAME} as published in the {DEFAULT_WEIGHTS} repo."
        )
    vit = folder / VIT_CONFIG_NAME
    return WeightFiles(
        folder / CONFIG_NAME, folder / CHECKPOINT_NAME, vit if vit.is_file() else None, str(folder)
    )


def _revision(repo: str, revision: str | None) -> str | None:
    return revision or (DEFAULT_REVISION if repo == DEFAULT_WEIGHTS else None)


def cached_weights(repo: str, revision: str | None = None) -> WeightFiles | None:
    """The repo's files if the hub cache already holds them, without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    revision = _revision(repo, revision)
    paths = [try_to_load_from_cache(repo, name, revision=revision) for name in (CONFIG_NAME, CHECKPOINT_NAME)]
    if not all(isinstance(path, str) for path in paths):
        return None
    return WeightFiles(Path(paths[0]), Path(paths[1]), None, _describe(repo, revision))


def download_weights(repo: str, revision: str | None = None) -> WeightFiles:
    """Fetch config and checkpoint into the standard hub cache, with a progress bar."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    revision = _revision(repo, revision)
    source = _describe(repo, revision)
    try:
        config, checkpoint = (
            Path(hf_hub_download(repo, name, revision=revision)) for name in (CONFIG_NAME, CHECKPOINT_NAME)
        )
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise WeightsUnavailable(
            f"{source} has no TripoSR weights ({CONFIG_NAME} and {CHECKPOINT_NAME}): "
            f"{type(exc).__name__}. Check the repo id, or pass a local folder."
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        # Offline, DNS failure, proxy, timeouts: huggingface_hub raises several kinds.
        raise WeightsUnavailable(
            f"The TripoSR weights ({source}, about 1.7 GB) are not on this machine and could not be "
            "downloaded: the Hugging Face hub is out of reach. Connect to the internet once so they "
            "can be fetched into the Hugging Face cache, or pass --weights with a folder that holds "
            f"{CONFIG_NAME} and {CHECKPOINT_NAME}."
        ) from exc
    if repo == DEFAULT_WEIGHTS and revision == DEFAULT_REVISION:
        verify_checkpoint(checkpoint, DEFAULT_CHECKPOINT_SHA256)
    return WeightFiles(config, checkpoint, None, source)


def verify_checkpoint(path: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 24), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise WeightsUnavailable(
            f"The downloaded checkpoint {path} is damaged (its SHA-256 does not match the "
            "published one). Delete it and run again to download it afresh."
        )


def _describe(repo: str, revision: str | None) -> str:
    return f"{repo}@{revision[:7]}" if revision else repo
