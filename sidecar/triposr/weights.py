"""Where the model's files come from: a local folder, or a Hugging Face repo fetched once into its cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from shared.protocol import weights_folder

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


def locate_weights(weights: str = DEFAULT_WEIGHTS, revision: str | None = None) -> WeightFiles:
    """The model's files, downloading them from the hub on first use."""
    if weights_folder(weights):
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
    config, checkpoint, vit = (
        try_to_load_from_cache(repo, name, revision=revision)
        for name in (CONFIG_NAME, CHECKPOINT_NAME, VIT_CONFIG_NAME)
    )
    if not (isinstance(config, str) and isinstance(checkpoint, str)):
        return None
    vit_path = Path(vit) if isinstance(vit, str) else None
    return WeightFiles(Path(config), Path(checkpoint), vit_path, _describe(repo, revision))


def download_weights(repo: str, revision: str | None = None) -> WeightFiles:
    """Fetch config and checkpoint into the standard hub cache, with a progress bar."""
    from huggingface_hub import hf_hub_download

    revision = _revision(repo, revision)
    source = _describe(repo, revision)
    # One quick look first: offline, huggingface_hub would retry with backoff for half a minute.
    _check_hub(repo, revision, source)
    try:
        config, checkpoint = (
            Path(hf_hub_download(repo, name, revision=revision)) for name in (CONFIG_NAME, CHECKPOINT_NAME)
        )
        vit = _download_optional(repo, VIT_CONFIG_NAME, revision)
    except Exception as exc:  # the hub client raises many types for a broken transfer
        _raise_if_not_found(exc, source)
        raise WeightsUnavailable(
            f"Downloading the TripoSR weights from {source} failed ({exc}); run again to resume."
        ) from exc
    if repo == DEFAULT_WEIGHTS and revision == DEFAULT_REVISION:
        verify_checkpoint(checkpoint, DEFAULT_CHECKPOINT_SHA256)
    return WeightFiles(config, checkpoint, vit, source)


def _download_optional(repo: str, name: str, revision: str | None) -> Path | None:
    """A file the repo may lack (the official one has no vit_config.json): its path, or None."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, name, revision=revision))
    except EntryNotFoundError as exc:
        if isinstance(exc, LocalEntryNotFoundError):
            raise
        return None


def _check_hub(repo: str, revision: str | None, source: str) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(repo, CONFIG_NAME, revision=revision), timeout=10)
    except Exception as exc:  # DNS, refused connections, proxies, timeouts: all mean "out of reach"
        _raise_if_not_found(exc, source)
        raise WeightsUnavailable(
            f"The TripoSR weights ({source}, about 1.7 GB) are not on this machine and the Hugging Face "
            f"hub is out of reach ({_short_reason(exc)}): connect to the internet once so they are "
            f"downloaded into the Hugging Face cache, or pass --weights with a folder holding "
            f"{CONFIG_NAME} and {CHECKPOINT_NAME}."
        ) from exc


def _raise_if_not_found(exc: Exception, source: str) -> None:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    not_found = (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)
    if isinstance(exc, not_found) and not isinstance(exc, LocalEntryNotFoundError):
        raise WeightsUnavailable(
            f"{source} holds no TripoSR weights ({CONFIG_NAME} and {CHECKPOINT_NAME}); check the repo id "
            "and revision, or pass --weights with a local folder."
        ) from exc


def _short_reason(exc: BaseException) -> str:
    """The innermost error's text, which names the actual cause (DNS, refused, timeout)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 120 else text[:117] + "..."


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
