"""Per-tunnel pre-shared keys derived from one master secret.

Deriving (HMAC-SHA256 over the two IKE IDs) gives every spoke its own key,
stable across runs, without storing a key per spoke anywhere.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

PSK_LABEL = "gre-ipsec-lab/psk/v1"


def derive_psk(master_secret: str, hub_id: str, spoke_id: str) -> str:
    """A 43-character URL-safe key unique to the hub/spoke pair."""
    if not master_secret:
        raise ValueError("master secret is empty")
    message = f"{PSK_LABEL}|{hub_id}|{spoke_id}".encode()
    digest = hmac.new(master_secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
