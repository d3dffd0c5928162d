"""The MTU arithmetic against the field notes' table (IPv4, AES-GCM-128)."""
import pytest

from lablib.crypto import parse_proposals
from lablib.mtu import gre_overhead, largest_esp_payload, plan_mtu

GCM = parse_proposals("aes_gcm128-null", "esp")


@pytest.mark.parametrize(("wan", "nat_t", "tunnel", "inner_no_key", "inner_key"), [
    (1500, True, 1438, 1400, 1396),
    (1500, False, 1446, 1408, 1404),
    (1492, True, 1430, 1392, 1388),
])
def test_table_figures(wan: int, nat_t: bool, tunnel: int, inner_no_key: int, inner_key: int) -> None:
    assert plan_mtu(wan, GCM, nat_t, gre_key=False).tunnel_mtu == tunnel
    assert plan_mtu(wan, GCM, nat_t, gre_key=False).inner_mtu == inner_no_key
    assert plan_mtu(wan, GCM, nat_t, gre_key=True).inner_mtu == inner_key


def test_esp_packet_of_the_tunnel_mtu_fits_and_one_more_byte_does_not() -> None:
    # ESP size for an inner packet of n bytes: outer IP + UDP + ESP hdr + IV + padded(n + 2) + ICV.
    def esp_size(n: int) -> int:
        padded = -(-(n + 2) // 4) * 4
        return 20 + 8 + 8 + 8 + padded + 16

    tunnel = largest_esp_payload(1500, GCM[0], nat_t=True)
    assert esp_size(tunnel) <= 1500
    assert esp_size(tunnel + 1) > 1500 or esp_size(tunnel + 1) == esp_size(tunnel)  # padding slack
    assert esp_size(tunnel + 3) > 1500


def test_cbc_pads_to_sixteen_and_uses_its_integrity_icv() -> None:
    cbc = parse_proposals("aes256-sha2_512", "esp")
    # 1500 - 20 - 8 - 8 - 16 IV - 32 ICV = 1416, padded down to 1408, minus 2 trailer bytes.
    assert largest_esp_payload(1500, cbc[0], nat_t=True) == 1406


def test_several_proposals_take_the_smallest() -> None:
    both = parse_proposals("aes_gcm128-null,aes256-sha2_512", "esp")
    assert plan_mtu(1500, both, nat_t=True, gre_key=False).tunnel_mtu == 1406


def test_gre_overhead() -> None:
    assert gre_overhead(False) == 38
    assert gre_overhead(True) == 42
