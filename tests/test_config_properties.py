"""Property: any config at all ends in one ConfigError or a valid plan whose payloads are sound.

Hypothesis draws every key from values people type, near misses and hostile text
(control characters, odd numerals, deep nesting, huge strings, missing keys);
any other exception is a traceback a user would see.
"""
from __future__ import annotations

import string

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import boot_files, mock_secrets, project_config, ssh_public_key
from lablib import payload
from lablib.boot import HUB_KEYS
from lablib.cmdline import kernel_cmdlines, provider_line, provider_read
from lablib.config import PLAIN_KEYS, ConfigError, parse_config
from lablib.keys import derive_psk
from lablib.tunnel import spoke_tunnel

HOSTILE = st.one_of(
    st.text(),  # any Unicode, NUL and line breaks included
    st.text(alphabet=string.printable),
    st.sampled_from(["1e3", "0x10", "\u0663", " 2 ", "+2", "2_0", "-1", "yes", "no", "True", "null", "[]", "{}",
                     "[[[[1]]]]", "[" * 2000, "9" * 5000, " ", "\x00", "a\nb: c", "~", "/", "https://", "0/0",
                     "http://[::1", "https://h:99999/x", "file:///etc/passwd", "https://u:p@h/x", "/dev/null",
                     "console=ttyS0 console=tty0", "255.255.255.255/32", "127.0.0.1/8"]),
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.lists(st.integers(min_value=-3, max_value=300), max_size=6).map(lambda xs: str(xs)),
)


CHOICES = {
    "spokes": ["2", "1", "3", "7"],
    "routedSpokes": ["[]", "[1]", "[1,2]"],
    "hubSubnet": ["192.168.1.0/24", "10.99.0.0/16", "172.16.5.0/28"],
    "spokeSubnetPool": ["192.168.0.0/16", "10.128.0.0/12"],
    "siteSubnetPrefix": ["24", "28", "20"],
    "overlayPool": ["240.0.0.0/24", "100.64.0.0/24", "240.0.0.0/8"],
    "ike": ["aes256-sha2", "aes128-sha2;modp2048, chacha20_poly1305-sha2", "aes_gcm256-sha2-ecp384"],
    "esp": ["aes_gcm128-null", "aes256-sha2_512", "chacha20_poly1305-null"],
    "image": [str(boot_files() / "test.qcow2"), "https://images.example/d.qcow2"],
    "kernel": [""],  # direct boot: drawn as a whole in configs()
    "initrd": [""],
    "kernelCmdline": [""],
    **{key: [""] for key in HUB_KEYS},  # drawn as a whole in configs()
    "interfaceMode": ["xfrm", "vti"],
    "domainType": ["kvm", "qemu"],
    "sshPublicKey": [ssh_public_key()],
    "idDomain": ["", "lab.example", "a-1.b"],  # the IKE IDs, so the PSKs and payloads, follow it
    "certKey": ["ecdsa-p256", "rsa-3072"],
}


def _default(key: str) -> str:
    value = project_config()[key]["default"]
    return str(value).lower() if isinstance(value, bool) else str(value)


def likely(key: str) -> st.SearchStrategy[str]:
    """Values of key that often parse, so that valid plans are drawn too."""
    if key == "sshPublicKey":  # comments of any printable text end up in authorized_keys
        return st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40).map(
            lambda comment: f"{ssh_public_key()} {comment}".rstrip())
    return st.sampled_from(CHOICES.get(key, [_default(key)]))


@st.composite
def configs(draw: st.DrawFn) -> tuple[dict[str, str | None], dict[str, str | None]]:
    # A few keys at a time go bad, so that both errors and valid plans are drawn often.
    direct = (str(boot_files() / "vmlinuz"), str(boot_files() / "initrd.img"),
              "root=/dev/vda rw console=tty0 console=ttyS0 quiet")
    boot = draw(st.sampled_from([("", "", ""), direct]))
    hub_image = str(boot_files() / "test.qcow2")
    hub_boot = draw(st.sampled_from([("", "", "", ""), (hub_image, "", "", ""), (hub_image, *direct)]))
    bad = draw(st.sets(st.sampled_from([*PLAIN_KEYS, "masterSecret", "sshPrivateKey"]), max_size=2))
    raw: dict[str, str | None] = {key: draw(st.one_of(st.none(), HOSTILE)) if key in bad else draw(likely(key))
                                  for key in PLAIN_KEYS}
    raw.update({key: value for key, value in zip(BOOT_KEYS, boot) if key not in bad})
    raw.update({key: value for key, value in zip(HUB_KEYS, hub_boot) if key not in bad})
    secrets: dict[str, str | None] = dict(mock_secrets())
    for key in bad & set(secrets):
        secrets[key] = draw(st.one_of(st.none(), HOSTILE))
    return raw, secrets


BOOT_KEYS = ("kernel", "initrd", "kernelCmdline")
CONTROL = {chr(c) for c in range(32)} - {"\n", "\t"}  # the templates indent scripts with tabs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_any_config_is_one_config_error_or_a_sound_plan(drawn) -> None:
    raw, secrets = drawn
    try:
        spec = parse_config(raw, secrets)
    except ConfigError as error:
        assert error.key in (*PLAIN_KEYS, "masterSecret", "sshPrivateKey")
        assert len(str(error)) < 1000
        event(f"ConfigError lab:{error.key}")
        return
    event("valid plan")
    plan, config = spec.plan, spec.config
    for site in plan.sites:
        tunnel = None if site.is_hub else spoke_tunnel(spec, site)
        psk = None if site.is_hub else derive_psk(secrets["masterSecret"], plan.hub.ike_id, site.ike_id)
        seed = payload.node_payload(spec, "test", site, tunnel)
        user_data = seed.user_data(psk)
        assert not CONTROL & set(user_data)
        document = yaml.safe_load(user_data)
        assert document["users"][0]["ssh_authorized_keys"] == [config.ssh_public_key]
        if tunnel is not None:
            hub = payload.hub_side(spec, tunnel)
            assert not CONTROL & set(hub.up_script + "".join(f["content"] for f in hub.files(psk)))
    for boot in (config.boot, config.hub_boot):
        cmdlines = kernel_cmdlines(boot.kernel_cmdline)
        assert provider_read(provider_line(cmdlines)) == cmdlines


WORD = st.one_of(
    st.sampled_from(["rw", "ro", "quiet", "splash", "single", "nomodeset"]),
    st.tuples(st.sampled_from(["console", "root", "net.ifnames", "rd.break", "loglevel", "a"]),
              st.text(alphabet=string.ascii_letters + string.digits + "/=,.:-\"", max_size=8)).map("=".join),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(WORD, max_size=10))
def test_kernel_command_line_is_carried_faithfully_or_refused(words: list[str]) -> None:
    """Accepted: the kernel gets the same parameters, repeats in the written order, and the
    provider reads back exactly what the program declares (no diff on the next run)."""
    cmdline = " ".join(words)
    try:
        cmdlines = kernel_cmdlines(cmdline)
    except ConfigError as error:
        assert error.key == "kernelCmdline"
        return
    domain = provider_line(cmdlines).split()
    assert sorted(domain) == sorted(words)
    for key in {word.partition("=")[0] for word in words if "=" in word}:
        def values(seq: list[str]) -> list[str]:
            return [w for w in seq if w.partition("=")[0] == key and "=" in w]
        assert values(domain) == values(words)
    assert provider_read(provider_line(cmdlines)) == cmdlines


def test_the_property_draws_valid_plans_too() -> None:
    """A property that only ever meets errors proves nothing about plans: the first choices parse."""
    raw = {key: CHOICES.get(key, [_default(key)])[0] for key in PLAIN_KEYS}
    assert parse_config(raw, mock_secrets()).config.addresses.spokes == 2
