"""The SSH key pair: what sshd on the VMs and paramiko in the hub push will really use.

The public line lands in every VM's authorized_keys, the private key drives the
hub push: both are checked here, before any resource exists, so a bad pair
fails as one config error instead of a 15-minute SSH timeout. Errors about the
private key never quote it.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import struct

import paramiko
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from lablib.errors import ConfigError

# Key types OpenSSH 9.2 (Debian 12) sshd accepts by default that paramiko can also sign
# with: ssh-dss is off in sshd, sk-* keys need a hardware token the hub push cannot use.
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
MIN_RSA_BITS = 1024  # sshd's RequiredRSASize default (OpenSSH 9.1+); ssh-keygen refuses less
_LINE = re.compile(r"(?P<type>[a-z0-9-]+) (?P<blob>[A-Za-z0-9+/]+={0,2})(?: (?P<comment>[^\x00-\x1f\x7f]*))?")
_PRIVATE_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
PUBLIC_HINT = "must be one OpenSSH public key line: TYPE BASE64 [comment], TYPE one of " + ", ".join(KEY_TYPES)


def _embedded_type(blob: bytes) -> str:
    """The key type the blob names in its first SSH string."""
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4:4 + length].decode("ascii")


def check_public_key(line: str) -> bytes:
    """Validate an authorized_keys line (no options); return the decoded key blob."""
    match = _LINE.fullmatch(line)
    if not match:
        raise ConfigError("sshPublicKey", line, PUBLIC_HINT)
    comment = match["comment"] or ""
    if not comment.isprintable() or any(ord(char) > 0xFFFF for char in comment):
        raise ConfigError("sshPublicKey", line, "its comment must be printable text without characters beyond "
                                                "U+FFFF (cloud-init's YAML loader splits those into surrogates)")
    key_type = match["type"]
    if key_type not in KEY_TYPES:
        raise ConfigError("sshPublicKey", line, f"key type {key_type!r} is not one sshd and the hub push "
                                                f"both accept ({', '.join(KEY_TYPES)})")
    try:
        blob = base64.b64decode(match["blob"], validate=True)
        embedded = _embedded_type(blob)
        key = load_ssh_public_key(f"{key_type} {match['blob']}".encode())
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError) as error:
        raise ConfigError("sshPublicKey", line, f"its base64 key does not decode to a {key_type} key "
                                                f"({error or 'truncated'})") from None
    if embedded != key_type:
        raise ConfigError("sshPublicKey", line, f"the line says {key_type} but the key inside is {embedded!r}")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ConfigError("sshPublicKey", line, f"RSA key of {key.key_size} bits: sshd refuses RSA keys "
                                                f"under {MIN_RSA_BITS} bits")
    return blob


def load_private_key(text: str) -> paramiko.PKey:
    """Load an unencrypted Ed25519, ECDSA or RSA private key (OpenSSH or PEM); ConfigError otherwise."""
    for key_type in _PRIVATE_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise ConfigError("sshPrivateKey", "[secret]", "is encrypted (has a passphrase): the hub push "
                                                           "runs unattended, give an unencrypted key") from None
        # paramiko reports a garbled key with whatever its decoder raised.
        except (paramiko.SSHException, ValueError, TypeError, IndexError, struct.error, binascii.Error):
            continue
    raise ConfigError("sshPrivateKey", "[secret]", "could not be read as an Ed25519, ECDSA or RSA private key "
                                                   "(OpenSSH or PEM text): it is garbled or of another type")


def check_key_pair(private_text: str, public_line: str) -> None:
    """The private key loads and is the other half of lab:sshPublicKey."""
    blob = check_public_key(public_line)
    key = load_private_key(private_text)
    if key.asbytes() != blob:
        raise ConfigError("sshPrivateKey", "[secret]", f"is not the private half of lab:sshPublicKey "
                                                       f"({key.get_name()} key {key.fingerprint})")
