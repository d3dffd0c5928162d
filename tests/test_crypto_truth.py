"""One crypto truth: the program (lablib.crypto) and the pack (policy/lab_policies/ipsec.py) agree.

Both read ipsec.yaml with parsers of their own. Every cipher x integrity x DH
combination of the grammar, in both ike= and esp=, gets the same verdict
from both; so do lines Hypothesis builds from known, weak, unknown and
malformed tokens, and arbitrary text; every certificate key type name (lab:certKey), allowed,
weak or unknown, gets the same verdict too. Every name the table allows passes
Debian 12's `ipsec algparse` (in the Debian tree, as tests/test_debian_tools.py).
And the file pluto reads: every accepted line, lists written with blanks too, is
rendered into conns that libreswan 4.10 and 5.2 read back as the line meant.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import ROOT, parse_lab
from lablib import crypto, inputs, mtu, render
from lablib.errors import ConfigError
from lablib.tunnel import ConnEnd, spoke_tunnel
from policy_harness import lab_policies

PACK = lab_policies.ipsec
KINDS = ("ike", "esp")
TABLE = yaml.safe_load(crypto.IPSEC_FILE.read_text())
CIPHERS = [name for family in TABLE["ciphers"] for name in family["names"]]
INTEGRITY = list(TABLE["integrity_icv_bytes"])
DH_GROUPS = list(TABLE["dh_groups"])
WEAK = list(TABLE["weak"])
SUITES = ("bookworm", "trixie")  # Debian 12 (libreswan 4.10) and 13 (5.2)


def program_accepts(line: object, kind: str) -> bool:
    try:
        crypto.parse_proposals(line, kind)  # type: ignore[arg-type]
    except crypto.ProposalError:
        return False
    return True


def pack_accepts(line: object, kind: str) -> bool:
    return not any(p.problems for p in PACK.parse_proposals(line, kind))


def test_both_read_the_same_table() -> None:
    assert PACK.IPSEC_FILE == crypto.IPSEC_FILE
    assert {name: (c.iv_bytes, c.block_bytes, c.aead_icv_bytes) for name, c in PACK.CIPHERS.items()} == {
        name: (c.iv_bytes, c.block_bytes, c.aead_icv_bytes) for name, c in crypto.CIPHERS.items()}
    assert PACK.INTEGRITY_ICV_BYTES == crypto.INTEGRITY_ICV_BYTES
    assert PACK.NO_INTEGRITY_ICV_BYTES == crypto.DEFAULT_INTEGRITY_ICV_BYTES
    assert PACK.DH_GROUPS == crypto.DH_GROUPS and set(PACK.WEAK) == crypto.WEAK
    assert (mtu.IPV4_HEADER, mtu.NAT_T_UDP_HEADER, mtu.ESP_HEADER, mtu.ESP_TRAILER, mtu.GRE_HEADER, mtu.GRE_KEY,
            mtu.ETHERNET_HEADER) == tuple(PACK.OVERHEAD[key] for key in (
                "ipv4_header", "nat_t_udp_header", "esp_header", "esp_trailer", "gre_header", "gre_key",
                "ethernet_header"))


CERT_TABLE = TABLE["certificates"]
# Every certificate key type name either side could meet: allowed, weak, near misses and junk.
CERT_NAMES = [*CERT_TABLE["keys"], *CERT_TABLE["weak_keys"], "rsa-8192", "rsa-2047", "ecdsa-p521", "ed25519",
              "ed448", "ECDSA-P256", "rsa2048", " rsa-2048", "rsa-2048 ", "ecdsa", "rsa", "", "junk"]


def program_accepts_key(name: str) -> bool:
    try:
        crypto.check_cert_key(name)
    except crypto.CertKeyError:
        return False
    return True


def test_both_read_the_same_certificate_table() -> None:
    assert {name: {field: value for field, value in vars(key).items() if field != "name" and value is not None}
            for name, key in crypto.CERT_KEYS.items()} == PACK.CERT_KEYS
    assert PACK.WEAK_CERT_KEYS == crypto.WEAK_CERT_KEYS == CERT_TABLE["weak_keys"]
    assert list(crypto.CERT_KEYS) == ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
    assert not set(crypto.CERT_KEYS) & set(crypto.WEAK_CERT_KEYS)


@pytest.mark.parametrize("name", CERT_NAMES)
def test_every_certificate_key_name_gets_one_verdict(name: str) -> None:
    accepted = program_accepts_key(name)
    assert accepted == (PACK.cert_key_problem(name) is None)
    assert accepted == (name in CERT_TABLE["keys"])
    if name in CERT_TABLE["weak_keys"]:  # both give the table's reason
        reason = CERT_TABLE["weak_keys"][name]
        with pytest.raises(crypto.CertKeyError, match=re.escape(reason)):
            crypto.check_cert_key(name)
        assert reason in (PACK.cert_key_problem(name) or "")


@settings(max_examples=200, deadline=None)
@given(name=st.one_of(st.sampled_from(CERT_NAMES), st.text(max_size=12)))
def test_generated_key_names_get_one_verdict(name: str) -> None:
    assert program_accepts_key(name) == (PACK.cert_key_problem(name) is None)


def test_each_key_type_has_the_fields_its_family_needs() -> None:
    """RSA: bits >= 2048 and authby rsa-sha2 (RSA-PSS); ECDSA: a 256+ bit curve and authby ecdsa; SHA-2."""
    for key in crypto.CERT_KEYS.values():
        assert key.hash in ("sha256", "sha384", "sha512")
        if key.family == "rsa":
            assert (key.authby, key.curve) == ("rsa-sha2", None) and key.bits is not None and key.bits >= 2048
        else:
            assert (key.family, key.authby, key.bits) == ("ecdsa", "ecdsa", None)
            assert key.curve in ("secp256r1", "secp384r1")


def test_a_weak_cert_key_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"lab:certKey .*RSA below 2048 bits is breakable"):
        parse_lab(certKey="rsa-1024")


def grammar() -> list[str]:
    """Every cipher x (integrity | null | nothing) x (DH group | none | nothing), in the usual spellings."""
    lines = []
    for cipher, integrity, dh in itertools.product(CIPHERS, INTEGRITY + ["null", ""], DH_GROUPS + ["none", ""]):
        line = cipher + (f"-{integrity}" if integrity else "") + (f";{dh}" if dh else "")
        lines.append(line)
    return lines


@pytest.mark.parametrize("kind", KINDS)
def test_every_combination_of_the_grammar_gets_one_verdict(kind: str) -> None:
    lines = grammar()
    verdicts = {line: (program_accepts(line, kind), pack_accepts(line, kind)) for line in lines}
    disagree = {line: v for line, v in verdicts.items() if v[0] != v[1]}
    assert disagree == {}
    accepted = sum(program for program, _pack in verdicts.values())
    assert 0 < accepted < len(lines)  # the grammar has both sides: the check above can fail


@pytest.mark.parametrize("line, kind, accepted", [
    ("aes256-sha2;modp2048", "ike", True), ("aes_gcm256-null;ecp384", "ike", True),
    ("aes_gcm128-null", "esp", True), ("aes_gcm_c_256-null", "esp", True), ("aes_gcm_16_192-null", "esp", True),
    ("aes256-sha2;none", "ike", False),  # no key exchange: weakens IKE
    ("aes_gcm-null-none", "ike", False), ("aes256-sha2;modp2048", "esp", False), ("aes_gcm-null-none", "esp", False),
    ("aes_gcm-null-null", "esp", False), ("aes_gmac-sha2", "esp", False), ("null_auth_aes_gmac-null", "esp", False),
])
def test_verdicts_the_two_sides_used_to_differ_on(line: str, kind: str, accepted: bool) -> None:
    assert (program_accepts(line, kind), pack_accepts(line, kind)) == (accepted, accepted)


def test_ike_without_key_exchange_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"lab:ike .*none"):
        parse_lab(ike="aes256-sha2;none")


KNOWN = CIPHERS + INTEGRITY + DH_GROUPS + ["null", "none"]
ODD = ["camellia256", "blowfish", "sha3_256", "modp1024x", "aes 128", "", " ", "aes-", "é", "AES256", "3DES", "\t"]
TOKENS = st.one_of(st.sampled_from(KNOWN), st.sampled_from(WEAK), st.sampled_from(ODD),
                   st.text(alphabet="abcdes0123456789_ -;+,", max_size=8))
SEPARATORS = st.sampled_from(["-", ";", "+", "--", " - ", ""])


@st.composite
def proposal_lines(draw: st.DrawFn) -> str:
    """Comma-separated proposals: mostly grammatical, with weak, unknown and malformed parts mixed in."""
    proposals = []
    for _ in range(draw(st.integers(1, 3))):
        tokens = [draw(st.sampled_from(CIPHERS + WEAK + ODD[:3] + ["null"]))]
        tokens += draw(st.lists(TOKENS, max_size=4))
        text = tokens[0] + "".join(draw(SEPARATORS) + token for token in tokens[1:])
        proposals.append(draw(st.sampled_from([text, text.upper(), f" {text} "])))
    return ",".join(proposals)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.one_of(proposal_lines(), st.text(max_size=40)), kind=st.sampled_from(KINDS))
def test_generated_lines_get_one_verdict(line: str, kind: str) -> None:
    assert program_accepts(line, kind) == pack_accepts(line, kind)


def shapes() -> list[str]:
    """kind=line for every cipher x integrity part x DH part, in each spelling libreswan's grammar has."""
    integrity_parts = ["", *(f"-{i}" for i in INTEGRITY), "-null", f"-{INTEGRITY[0]}+{INTEGRITY[-1]}"]
    dh_parts = ["", *(f"{sep}{d}" for d in DH_GROUPS for sep in "-;"), f";{DH_GROUPS[0]}+{DH_GROUPS[-1]}", ";none"]
    return [f"{kind}={c}{i}{d}" for kind in KINDS for c in CIPHERS for i in integrity_parts for d in dh_parts
            if not (d.startswith("-") and not i)]  # cipher-dh reads dh as integrity: out of place


# Valid names in an order or shape libreswan refuses; the program must refuse them too.
OUT_OF_ORDER = ["ike=aes256-modp2048-sha2", "ike=aes256-sha2-sha2_512", "ike=aes256-sha2-modp2048-sha2_512",
                "ike=aes256-sha2;modp2048;modp3072", "ike=aes256-sha2;modp2048-modp3072", "esp=aes256-sha2-sha2_512",
                "ike=aes_gcm128-modp2048-null", "esp=aes_gcm128-modp2048", "ike=aes256-sha2-", "ike=aes256--sha2"]


def in_suite(suite: str, *command: str, work: Path) -> subprocess.CompletedProcess[str]:
    """command run in the suite's Debian tree."""
    return subprocess.run([str(ROOT / "scripts" / "in-root.sh"), "--suite", suite, *command], cwd=work,
                          capture_output=True, text=True, timeout=300)


def algparse(suite: str, lines: list[str], work: Path) -> dict[str, str]:
    """What Debian's `ipsec algparse -v2` (in the suite's tree) says of each line."""
    result = in_suite(suite, "ipsec", "algparse", "-v2", *lines, work=work)
    assert result.stdout, f"Debian tools unavailable ({result.stderr.strip()}): run `make deps` first"
    blocks = dict(re.findall(r"^algparse -v2 '([^']*)'\n((?:(?:\t|algparse: ).*\n?)*)", result.stdout, re.M))
    assert set(blocks) == set(lines)
    return blocks


@pytest.mark.parametrize("suite", SUITES)
def test_every_line_the_program_accepts_passes_algparse(suite: str, tmp_path: Path) -> None:
    """Every proposal of every shape the program accepts, through Debian's libreswan (4.10 and 5.x):
    none may be an error. The out-of-order lines are errors there and refused here."""
    lines = shapes()
    accepted = [line for line in lines if program_accepts(line.split("=", 1)[1], line.split("=", 1)[0])]
    assert 0 < len(accepted) < len(lines)
    said = algparse(suite, accepted + OUT_OF_ORDER, tmp_path)
    assert {line: said[line] for line in accepted if "ERROR" in said[line]} == {}
    assert [line for line in OUT_OF_ORDER if program_accepts(line.split("=", 1)[1], line.split("=", 1)[0])] == []
    assert [line for line in OUT_OF_ORDER if "ERROR" not in said[line]] == []
    assert algparse(suite, ["ike=aes256-sha2;none"], tmp_path) == {  # refused by both: no key exchange
        "ike=aes256-sha2;none": "\tERROR: IKE DH algorithm 'none' not permitted\n"}


def first_dh_group(algparse_line: str) -> str:
    """The DH group an initiator sends its key exchange for: the first of the proposal's last part."""
    return algparse_line.strip().split("-")[-1].split("+")[0]


def test_the_default_ike_gives_libreswan_4_and_5_the_same_first_dh_group(tmp_path: Path) -> None:
    """A mixed fleet (a 5.x hub, 4.x spokes) agrees on the key exchange at the first IKE_SA_INIT.
    Without a group, 4.10 guesses MODP2048 and 5.2 wants DH19: the hub answers INVALID_KE_PAYLOAD,
    and a 4.10 spoke re-dialling a restarted hub ignored those answers until its 60 s retransmit
    timeout (docs/stacks.md, "Mixed fleet")."""
    default = parse_lab().config.ike
    line = f"ike={default}"
    first = {suite: first_dh_group(algparse(suite, [line], tmp_path)[line]) for suite in SUITES}
    assert len(set(first.values())) == 1, first
    without_group = "ike=aes256-sha2"  # the original deployment's line: the check above can fail
    assert len({first_dh_group(algparse(suite, [without_group], tmp_path)[without_group]) for suite in SUITES}) == 2


def as_written(line: str, kind: str) -> str:
    """What the config writes into the conn for an accepted line."""
    return crypto.proposal_line(crypto.parse_proposals(line, kind))


BLANKS = st.text(alphabet=" \u00a0", max_size=2)


def lists_written(kind: str) -> st.SearchStrategy[str]:
    """Lists of mostly acceptable proposals, with blanks around the commas and capitals here and there."""
    proposal = st.builds(lambda c, i, d: c + (f"-{i}" if i else "") + (f";{d}" if d else ""), st.sampled_from(CIPHERS),
                         st.sampled_from(INTEGRITY + ["null", ""]),
                         st.sampled_from(DH_GROUPS + [""] if kind == "ike" else [""]))
    part = st.tuples(BLANKS, proposal, BLANKS, st.booleans()).map(
        lambda p: p[0] + (p[1].upper() if p[3] else p[1]) + p[2])
    return st.lists(part, min_size=1, max_size=4).map(",".join)


@settings(max_examples=200, deadline=None)
@given(drawn=st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), lists_written(kind))))
def test_an_accepted_line_is_written_without_blanks_and_means_the_same(drawn: tuple[str, str]) -> None:
    kind, line = drawn
    if not program_accepts(line, kind):
        event("refused")
        return
    written = as_written(line, kind)
    assert not any(c.isspace() for c in written)
    assert crypto.parse_proposals(written, kind) == crypto.parse_proposals(line, kind)
    assert as_written(written, kind) == written
    assert pack_accepts(written, kind)


# Lists as people write them: blanks around the commas, capitals, a no-break space.
WRITTEN = [("aes256-sha2, aes128-sha2", "aes_gcm128-null, aes256-sha2"),
           (" aes256-sha2;dh19 ,AES_GCM256-NULL;DH20 ", " chacha20_poly1305-null ,AES_CTR256-SHA2_384 "),
           ("aes256-sha2_512;modp3072 , chacha20_poly1305-null;curve25519,\u00a0aes128-sha2+sha2_512;dh19+dh20",
            "aes256 ,  aes_gcm256-null")]
SEPARATORS_WRITTEN = [", ", " ,", " , ", ",", ",\u00a0"]


def written_lists(kind: str) -> list[str]:
    """Every accepted line of the grammar, in lists as long as the config takes, written with blanks."""
    lines = [line.split("=", 1)[1] for line in shapes() if line.startswith(f"{kind}=")]
    lists: list[list[str]] = [[]]
    for line in (line for line in lines if program_accepts(line, kind)):
        if len(" , ".join([*lists[-1], line])) > inputs.MAX_LENGTH[kind]:  # " , ": the longest separator
            lists.append([])
        lists[-1].append(line)
    return [SEPARATORS_WRITTEN[n % len(SEPARATORS_WRITTEN)].join(part) for n, part in enumerate(lists)]


@functools.cache
def conns_to_read() -> tuple[tuple[ConnEnd, str, str], ...]:
    """Both ends of the lab's conns, rendered through the whole config, with the ike= and esp= lines
    typed: WRITTEN, and lists of every accepted line of the grammar (every other one in capitals)."""
    ike, esp = written_lists("ike"), written_lists("esp")
    typed = [*WRITTEN, *((line if n % 2 else line.upper(), esp[n % len(esp)]) for n, line in enumerate(ike))]
    conns = []
    for n, (ike_line, esp_line) in enumerate(typed):
        spec = parse_lab(ike=ike_line, esp=esp_line)
        tunnel = spoke_tunnel(spec, spec.plan.spokes[0])
        conns += [(dataclasses.replace(end, conn_name=f"list{n}-{end.conn_name}"), ike_line, esp_line)
                  for end in (tunnel.hub_end, tunnel.spoke_end)]
    return tuple(conns)


def conn_file(ends: Sequence[ConnEnd], work: Path) -> Path:
    conf = work / "conns.conf"
    conf.write_text("config setup\n\n" + "\n".join(render.render_conn(end) for end in ends))
    return conf


def check_config(suite: str, conf: Path) -> subprocess.CompletedProcess[str]:
    """`ipsec addconn --checkconfig` of conf after the VMs' compat step (5.x: no dpdaction=)."""
    compat = conf.parent / "compat.sh"
    compat.write_text(render.render_ipsec_compat())
    return in_suite(suite, "sh", "-c", 'sh "$1" "$2" && ipsec addconn --config "$2" --checkconfig', "check",
                    str(compat), str(conf), work=conf.parent)


def read_back(text: str) -> dict[str, dict[str, str]]:
    """conn -> {ike, esp} in `ipsec readwriteconf`'s output (5.2 runs some keys together on one line, tabs between)."""
    conns = {}
    for name, body in re.findall(r"^conn (\S+)\n((?:\t.*\n?)*)", text, re.M):
        conns[name] = dict(re.findall(r"(?:^|\t)(ike|esp)=([^\t\n]*)", body, re.M))
    return conns


@pytest.mark.parametrize("suite", SUITES)
def test_every_accepted_line_is_read_from_the_rendered_conn_as_meant(suite: str, tmp_path: Path) -> None:
    """Rendered conns pass `addconn --checkconfig` silently and libreswan's reader gets each typed
    line as the validator read it; algparse (above) vouches for the lines themselves."""
    conns = conns_to_read()
    conf = conn_file([end for end, _ike, _esp in conns], tmp_path)
    checked = check_config(suite, conf)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", ""), f"{suite}: {checked.stderr[-2000:]}"
    read = in_suite(suite, "ipsec", "readwriteconf", "--config", str(conf), work=tmp_path)
    assert read.returncode == 0, read.stderr
    assert read_back(read.stdout) == {end.conn_name: {"ike": as_written(ike, "ike"), "esp": as_written(esp, "esp")}
                                      for end, ike, esp in conns}


@pytest.mark.parametrize("suite", SUITES)
def test_a_list_written_with_blanks_is_refused_by_libreswan(suite: str, tmp_path: Path) -> None:
    """Why the config never writes a line as typed: the check above can fail."""
    spec = parse_lab()
    end = dataclasses.replace(spoke_tunnel(spec, spec.plan.spokes[0]).hub_end, ike=WRITTEN[0][0])
    checked = check_config(suite, conn_file([end], tmp_path))
    assert checked.returncode != 0 and "aes128-sha2" in checked.stderr, checked.stderr
