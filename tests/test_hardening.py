"""Values people really type, and hostile ones: each gets one ConfigError naming the key, or a valid plan."""
from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from harness import ROOT, boot_files, mock_secrets, run_program, ssh_private_key, ssh_public_key, stack_values
from lablib import names
from lablib.cmdline import kernel_cmdlines, provider_line, provider_read
from lablib.config import ConfigError, parse_config
from lablib.sshkeys import check_key_pair, check_public_key

IN_ROOT = ROOT / "scripts" / "in-root.sh"
SECRETS = mock_secrets()
NO_PASS = serialization.NoEncryption()


def parse(secrets: dict[str, str] | None = None, **overrides: object):
    return parse_config(stack_values(overrides, secrets=False), {**SECRETS, **(secrets or {})})


def refused(key: str, match: str, secrets: dict[str, str] | None = None, **overrides: object) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as caught:
        parse(secrets, **overrides)
    assert caught.value.key == key, caught.value
    return caught.value


# --- SSH keys ---------------------------------------------------------------------------------

def openssh_pair(key) -> tuple[str, str]:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, NO_PASS).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def rsa_line(bits: int) -> str:
    """An ssh-rsa line with a modulus of exactly `bits` bits (cryptography will not make one under 1024)."""
    modulus = (1 << (bits - 1)) | 1
    exponent, n = b"\x01\x00\x01", b"\x00" + modulus.to_bytes(bits // 8 + 1, "big")
    blob = ssh_string(b"ssh-rsa") + ssh_string(exponent) + ssh_string(n)
    return f"ssh-rsa {base64.b64encode(blob).decode()} small@lab"


KEYS = {
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p521": ec.generate_private_key(ec.SECP521R1()),
    "rsa-2048": rsa.generate_private_key(65537, 2048),
}


@pytest.mark.parametrize("name", KEYS)
def test_every_key_type_sshd_and_the_push_share_is_accepted(name: str) -> None:
    private, public = openssh_pair(KEYS[name])
    spec = parse({"sshPrivateKey": private}, sshPublicKey=f"{public} user@höst")
    assert spec.config.ssh_public_key.endswith("user@höst")


def test_pem_rsa_private_key_is_accepted() -> None:
    key = KEYS["rsa-2048"]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, NO_PASS)
    check_key_pair(pem.decode(), openssh_pair(key)[1])


ED_BLOB = ssh_public_key().split()[1]
RSA_BLOB = openssh_pair(KEYS["rsa-2048"])[1].split()[1]


@pytest.mark.parametrize(("line", "why"), [
    ("", "one OpenSSH public key line"),
    ("hunter2", "one OpenSSH public key line"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey test@lab", "does not decode"),  # the old placeholder
    (f"ssh-ed25519 {ED_BLOB[:-8]}", "does not decode"),  # truncated paste
    (f"ssh-rsa {ED_BLOB}", "does not decode"),  # label and blob disagree
    (f"ssh-ed25519 {RSA_BLOB}", "does not decode"),
    ("ssh-dss AAAAB3NzaC1kc3M= old@lab", "key type 'ssh-dss'"),
    (f"sk-ssh-ed25519@openssh.com {ED_BLOB}", "one OpenSSH public key line"),
    (f'command="/bin/sh" {ssh_public_key()}', "one OpenSSH public key line"),  # authorized_keys options
    (f"{ssh_public_key()}\n#cloud-config\nruncmd: [reboot]", "control character"),
    (f"{ssh_public_key()}\x00", "control character"),
    (rsa_line(1023), "1023 bits: sshd refuses"),
    (f"{ssh_public_key()} \U0001F511 key", "beyond U\\+FFFF"),  # found by the property test
    (f"{ssh_public_key()} zero\u200bwidth", "printable text"),
])
def test_bad_public_key_line_is_refused(line: str, why: str) -> None:
    refused("sshPublicKey", why, sshPublicKey=line)


def test_every_accepted_public_line_is_one_sshkeygen_reads(tmp_path: Path) -> None:
    """Debian 12's ssh-keygen (the OpenSSH of the VMs) fingerprints every line the program accepts,
    and refuses the blobs the program calls undecodable."""
    probe = subprocess.run([str(IN_ROOT), "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"Debian tools unavailable ({probe.stderr.strip()}): run `make deps` first"
    good = [openssh_pair(key)[1] for key in KEYS.values()] + [rsa_line(1024)]
    bad = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey test@lab", f"ssh-ed25519 {ED_BLOB[:-8]}",
           f"ssh-rsa {ED_BLOB}"]
    for number, line in enumerate(good + bad):
        check = (lambda: check_public_key(line)) if line in good else None
        if check:
            check()
        else:
            with pytest.raises(ConfigError):
                check_public_key(line)
        (tmp_path / f"{number}.pub").write_text(line + "\n")
        result = subprocess.run([str(IN_ROOT), "ssh-keygen", "-l", "-f", str(tmp_path / f"{number}.pub")],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert (result.returncode == 0) == (line in good), f"{line[:40]}: {result.stdout}{result.stderr}"


def test_encrypted_private_key_is_refused_as_encrypted_without_printing_it() -> None:
    for fmt in (serialization.PrivateFormat.OpenSSH, serialization.PrivateFormat.TraditionalOpenSSL):
        key = KEYS["rsa-2048"]
        locked = serialization.BestAvailableEncryption(b"pass-phrase")
        text = key.private_bytes(serialization.Encoding.PEM, fmt, locked).decode()
        error = refused("sshPrivateKey", "is encrypted", {"sshPrivateKey": text},
                        sshPublicKey=openssh_pair(key)[1])
        assert text.splitlines()[-2] not in str(error)


@pytest.mark.parametrize("text", [
    "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n",
    ssh_private_key().replace("A", "B"),  # a mangled copy
    ssh_private_key()[:120],  # cut short
    ssh_public_key(),  # the public line pasted into the secret
])
def test_garbled_private_key_is_refused_without_printing_it(text: str) -> None:
    error = refused("sshPrivateKey", "garbled", {"sshPrivateKey": text})
    assert "[secret]" in str(error)
    assert not [line for line in text.splitlines() if len(line) > 20 and line in str(error)]


def test_private_key_of_another_pair_is_refused() -> None:
    other, _ = openssh_pair(ed25519.Ed25519PrivateKey.generate())
    refused("sshPrivateKey", "not the private half of lab:sshPublicKey", {"sshPrivateKey": other})


@pytest.mark.parametrize("secret", [" " * 20, "\t\n" * 10])
def test_whitespace_only_secret_is_refused(secret: str) -> None:
    refused("masterSecret", "only whitespace", {"masterSecret": secret})


def test_master_secret_with_a_nul_byte_is_refused() -> None:
    refused("masterSecret", "NUL", {"masterSecret": "0123456789abcdef\x00"})


# --- Paths and URLs ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "why"), [
    ("images/debian.qcow2", "absolute path"),
    ("/nonexistent/debian.qcow2", "names no existing file"),
    ("/tmp", "names no existing file"),  # a directory
    ("ftp://mirror.example/debian.qcow2", "scheme 'ftp'"),
    ("file:///var/lib/images/debian.qcow2", "scheme 'file'"),
    ("https:///debian.qcow2", "with a host"),
    ("~nosuchuser/debian.qcow2", "absolute path"),
    ("https://user:hunter2@images.example/debian.qcow2", "user or password"),
    ("https://images.example/debian 12.qcow2", "no space"),
    ("http://[::1/debian.qcow2", "not a valid URL"),
    ("https://images.example:99999/debian.qcow2", "not a valid URL"),
])
def test_bad_image_is_refused(value: str, why: str) -> None:
    assert "hunter2" not in str(refused("image", why, image=value))


def test_image_url_and_home_path_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://images.example/debian-12.qcow2"
    assert parse(image=url).config.boot.image == url
    monkeypatch.setenv("HOME", str(boot_files()))
    assert parse(image="~/test.qcow2").config.boot.image == str(boot_files() / "test.qcow2")


def test_lab_cache_token_names_the_lab_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed stacks name the image as $LAB_CACHE/...: wherever LAB_CACHE points."""
    monkeypatch.setattr(names, "CACHE_DIR", boot_files())
    assert parse(image="$LAB_CACHE/test.qcow2").config.boot.image == str(boot_files() / "test.qcow2")
    refused("image", "absolute path", image="$LAB_CACHEDIR/test.qcow2")


BOOT = {"kernel": str(boot_files() / "vmlinuz"), "initrd": str(boot_files() / "initrd.img"),
        "kernelCmdline": "root=/dev/vda rw console=ttyS0"}


@pytest.mark.parametrize(("given", "missing"), [
    (("kernelCmdline",), "kernel"),
    (("initrd",), "kernel"),
    (("initrd", "kernelCmdline"), "kernel"),
    (("kernel",), "kernelCmdline"),  # the initrd is optional (the lab's own kernel needs none)
    (("kernel", "initrd"), "kernelCmdline"),
])
def test_incomplete_direct_boot_names_the_key_really_missing(given: tuple[str, ...], missing: str) -> None:
    refused(missing, f"lab:{missing}.*is missing", **{key: BOOT[key] for key in given})


def test_kernel_must_exist() -> None:
    refused("kernel", "names no existing file", **{**BOOT, "kernel": "/boot/no-such-vmlinuz"})


@pytest.mark.parametrize("written", ["/var/lib/libvirt/lab/", "//var/lib//libvirt/lab", "/var/lib/./libvirt/x/../lab"])
def test_pool_path_is_declared_as_libvirt_reads_it_back(written: str) -> None:
    """libvirt stores a pool target without // or a trailing /: declaring it so means no diff later."""
    assert parse(poolPath=written).config.pool_path == "/var/lib/libvirt/lab"


def test_pool_path_that_is_a_file_is_refused() -> None:
    refused("poolPath", "exists and is not a directory", poolPath=str(boot_files() / "test.qcow2"))


# --- Kernel command line ----------------------------------------------------------------------

def test_repeated_console_in_sorted_order_reaches_the_domain_as_written() -> None:
    cmdlines = kernel_cmdlines("root=/dev/vda console=tty0 console=ttyS0 rw")
    line = provider_line(cmdlines).split()
    assert [word for word in line if word.startswith("console=")] == ["console=tty0", "console=ttyS0"]
    assert sorted(line) == sorted("root=/dev/vda console=tty0 console=ttyS0 rw".split())
    assert provider_read(provider_line(cmdlines)) == cmdlines  # no diff on the next run


@pytest.mark.parametrize(("cmdline", "why"), [
    ("root=/dev/vda console=ttyS0 console=tty0", "repeats console= in an order"),
    ('root=/dev/vda dyndbg="file x +p"', "quoted value with a space"),
    ("root=/dev/vda -- single", "`--`"),
    ("root=/dev/vda _=x", "no usable name"),
    ("root=/dev/vda =x", "no usable name"),
    ("root=/dev/vda console=ttyS0,115200n8 \u00e9", "printable ASCII"),
    ("root=/dev/vda\tconsole=ttyS0", "control character"),
    ("root=/dev/vda " + "x" * 2100, "longer than the kernel's"),
])
def test_command_line_the_provider_cannot_carry_is_refused(cmdline: str, why: str) -> None:
    refused("kernelCmdline", why, **{**BOOT, "kernelCmdline": cmdline})


def test_program_hands_the_domain_both_consoles() -> None:
    run = run_program(stack_values({**BOOT, "kernelCmdline": "console=tty0 console=ttyS0 root=/dev/vda rw"}))
    cmdlines = run.named("lab-hub-domain").inputs["cmdlines"]
    assert cmdlines == [{"console": "tty0"}, {"console": "ttyS0", "root": "/dev/vda"}, {"_": "rw"}]


def test_quoted_value_without_space_is_kept_with_its_quotes() -> None:
    assert provider_line(kernel_cmdlines('root=/dev/vda rd.break="pre-mount"')) == 'rd.break="pre-mount" root=/dev/vda'


# --- Address plan -----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "why"), [
    ("hubSubnet", "127.0.0.0/24", "loopback"),
    ("hubSubnet", "169.254.1.0/24", "link-local"),
    ("hubSubnet", "224.0.0.0/24", "multicast"),
    ("hubSubnet", "0.0.0.0/24", "'this network'"),
    ("hubSubnet", "240.1.0.0/24", "reserved"),
    ("mgmtSubnet", "127.10.0.0/24", "loopback"),
    ("bridgeSubnet", "239.0.0.0/24", "multicast"),
    ("spokeSubnetPool", "0.0.0.0/0", "'this network'"),
    ("spokeSubnetPool", "160.0.0.0/4", "link-local"),
    ("overlayPool", "127.0.0.0/24", "loopback"),
    ("overlayPool", "224.0.0.0/24", "multicast"),
    ("overlayPool", "255.255.255.0/24", "broadcast"),
])
def test_special_purpose_ranges_are_refused_where_they_cannot_work(key: str, value: str, why: str) -> None:
    refused(key, why, **{key: value})


def test_overlay_pool_keeps_the_original_deployments_reserved_space() -> None:
    assert str(parse(overlayPool="240.0.0.0/8").config.addresses.overlay_pool) == "240.0.0.0/8"


def test_overlap_error_names_both_keys_their_values_and_the_spoke() -> None:
    error = refused("hubSubnet", "overlaps", hubSubnet="192.168.3.0/24")
    assert "lab:hubSubnet = '192.168.3.0/24'" in str(error)
    assert "spoke2's WAN subnet 192.168.3.0/24 (from lab:spokeSubnetPool = '192.168.0.0/16')" in str(error)


def test_overlap_of_two_plain_keys_names_both() -> None:
    error = refused("bridgeSubnet", "overlaps", bridgeSubnet="10.10.0.0/25")
    assert "lab:mgmtSubnet = '10.10.0.0/24'" in str(error)


# --- Every other value ------------------------------------------------------------------------

@pytest.mark.parametrize("numeral", ["1e3", "0x10", "\u0663", " 2 ", "+2", "2_0", "\uff12", "-1", "", "2.0", "02" * 6])
def test_odd_numerals_are_refused(numeral: str) -> None:
    refused("spokes", "integer from 1 to 250", spokes=numeral)


@pytest.mark.parametrize("value", ["[[1]]", "[" * 1500, "[1.0]", "[1e0]", '["1"]', "{}", "[true]", "1"])
def test_routed_spokes_of_any_other_shape_are_refused(value: str) -> None:
    refused("routedSpokes", "list of distinct spoke numbers", routedSpokes=value)


@pytest.mark.parametrize("value", ["yes", "1", "on", ""])
def test_booleans_are_true_or_false_only(value: str) -> None:
    refused("greKey", "true or false", greKey=value)


@pytest.mark.parametrize(("key", "value"), [
    ("ike", "aes256-sha2\n"),
    ("esp", "aes_gcm128-null\r"),
    ("poolPath", "/var/lib/libvirt/lab\x00"),
    ("interfaceMode", "xfrm\u2028"),
])
def test_text_that_would_land_in_a_vm_file_with_a_line_break_is_refused(key: str, value: str) -> None:
    refused(key, "control character", **{key: value})


def test_every_spoke_routed_fits() -> None:
    spec = parse(spokes=250, spokeSubnetPool="10.0.0.0/8", routedSpokes=list(range(1, 251)))
    assert len(spec.config.addresses.routed_spokes) == 250


def test_huge_value_is_refused_and_not_echoed_whole() -> None:
    assert len(str(refused("image", "longer than 4096", image="/" * 5000))) < 300
    error = refused("hubSubnet", "longer than 64", hubSubnet="1" * 1_000_000)
    assert len(str(error)) < 300
