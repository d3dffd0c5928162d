"""Proposal parsing: strong suites pass, weak or unknown ones are named."""
import pytest

from lablib.crypto import ProposalError, parse_proposals


@pytest.mark.parametrize(("line", "kind"), [
    ("aes256-sha2", "ike"), ("aes256-sha2;modp2048", "ike"), ("aes_gcm256-sha2_512-dh19", "ike"),
    ("aes_gcm128-null", "esp"), ("aes256-sha2_256", "esp"), ("chacha20_poly1305-null", "esp"),
    ("aes_gcm128-null,aes256-sha2", "esp"),
])
def test_strong_proposals_parse(line: str, kind: str) -> None:
    assert parse_proposals(line, kind)


@pytest.mark.parametrize(("line", "kind", "named"), [
    ("3des-sha2", "ike", "3des"), ("aes256-md5", "ike", "md5"), ("aes256-sha1", "esp", "sha1"),
    ("aes256-sha2;modp1024", "ike", "modp1024"), ("aes256-sha2-modp1536", "ike", "modp1536"),
    ("null-sha2", "esp", "null"), ("aes256-null", "esp", "null"), ("des-sha2", "esp", "des"),
    ("aes_gcm128-sha2", "esp", "AEAD"), ("blowfish-sha2", "esp", "blowfish"),
    ("aes256-sha2-modp2048", "esp", "ike="), ("", "esp", "empty"), ("aes 256", "ike", "malformed"),
])
def test_weak_or_unknown_proposals_are_named(line: str, kind: str, named: str) -> None:
    with pytest.raises(ProposalError, match=named):
        parse_proposals(line, kind)
