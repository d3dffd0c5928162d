"""The certificate payload (issue 18) as lablib.payload assembles it: fast, pure Python.

That these files and scripts work in a real pluto is tests/test_pluto_certs.py's and
test_pluto_ike.py's part. With the defaults (pre-shared keys) a spoke's user-data is what it
was before certificates existed: checked byte for byte against the render of c6e093e (the
commit before them) when they were wired in; here, that no part of the PKI shows in it.
"""
from __future__ import annotations

import subprocess

import pytest
import yaml

from harness import parse_lab
from lablib import names, payload, render
from lablib.config import LabSpec
from lablib.tunnel import spoke_tunnel

PSK = "k" * 43
CREDENTIALS = payload.SiteCredentials(bundle="QlVORExF", ca_pem="-----BEGIN CERTIFICATE-----\nCA\n")
PKI_PATHS = (names.PKI_DIR, names.LAB_PKI_IMPORT)


def user_data(spec: LabSpec, number: int, psk: str | None,
              credentials: payload.SiteCredentials | None = None) -> str:
    spoke = spec.plan.spokes[number - 1]
    return payload.node_payload(spec, "test", spoke, spoke_tunnel(spec, spoke)).user_data(psk, credentials)


def conn_options(text: str) -> dict[str, str]:
    return dict(line.strip().split("=", 1) for line in text.splitlines() if line.startswith("\t") and "=" in line)


@pytest.mark.parametrize("overrides", [{}, {"interfaceMode": "vti"}, {"auth": "cert", "pskSpokes": [1]}])
def test_a_psk_spokes_user_data_has_no_part_of_the_pki(overrides: dict[str, object]) -> None:
    spec = parse_lab(**overrides)
    text = user_data(spec, 1, PSK)
    data = yaml.safe_load(text)
    assert not any(path in text for path in PKI_PATHS) and "leftcert" not in text and "rightca" not in text
    files = {f["path"]: f for f in data["write_files"]}
    conn = conn_options(files[names.conn_conf_path("spoke1-hub")]["content"])
    assert conn["authby"] == "secret" and files[names.conn_secrets_path("spoke1-hub")]["permissions"] == "0600"
    assert [command[0] for command in data["runcmd"]] == ["sh", names.LAB_IPSEC_COMPAT, "ln", "systemctl"]
    # The template's certificate branch adds nothing: the same files rendered without it.
    seed = payload.node_payload(spec, "test", spec.plan.spokes[0], spoke_tunnel(spec, spec.plan.spokes[0]))
    files_again = [*seed.base_files, *payload.tunnel_files(spoke_tunnel(spec, spec.plan.spokes[0]).spoke_end, PSK)]
    assert text == render.render_user_data(seed.site, files_again, seed.ssh_public_key, seed.install_packages)


@pytest.mark.parametrize(("cert_key", "authby"), [("ecdsa-p256", "ecdsa"), ("rsa-2048", "rsa-sha2")])
def test_a_cert_spokes_user_data_imports_its_bundle_before_ipsec_starts(cert_key: str, authby: str) -> None:
    spec = parse_lab(auth="cert", certKey=cert_key, spokes=2, pskSpokes=[2])
    data = yaml.safe_load(user_data(spec, 1, None, CREDENTIALS))
    files = {f["path"]: f for f in data["write_files"]}
    conn = conn_options(files[names.conn_conf_path("spoke1-hub")]["content"])
    assert conn["authby"] == authby and conn["leftcert"] == "spoke1" and conn["rightca"] == "%same"
    assert conn["leftsendcert"] == "always" and conn["leftid"] == "@spoke1" and conn["rightid"] == "@hub"
    assert names.conn_secrets_path("spoke1-hub") not in files and "PSK" not in yaml.safe_dump(data)
    bundle, ca, script = (files[path] for path in (names.pki_bundle_path("spoke1"), names.PKI_CA_PATH,
                                                   names.LAB_PKI_IMPORT))
    assert (bundle["permissions"], bundle["content"]) == ("0600", CREDENTIALS.bundle + "\n")
    assert ca["permissions"] == "0644" and ca["content"].startswith(CREDENTIALS.ca_pem)
    assert script["permissions"] == "0755" and script["content"].startswith("#!/bin/sh\n")
    assert script["content"] == render.render_pki_import("spoke1")
    assert f"-n spoke1 " in script["content"] and names.pki_bundle_path("spoke1") in script["content"]
    subprocess.run(["sh", "-n"], input=script["content"], text=True, check=True)
    commands = [command[0] if command[0] != "systemctl" else " ".join(command[:2]) for command in data["runcmd"]]
    assert commands.index(names.LAB_IPSEC_COMPAT) < commands.index(names.LAB_PKI_IMPORT) \
        < commands.index("systemctl start")
    assert "ipsec.service" in data["runcmd"][commands.index("systemctl start")]
    # The mixed fleet's other spoke keeps its pre-shared key; a certificate spoke needs its certificate.
    assert names.LAB_PKI_IMPORT not in user_data(spec, 2, PSK)
    with pytest.raises(ValueError, match="spoke1 needs its certificate"):
        user_data(spec, 1, None)


def test_the_hub_sides_of_a_cert_and_a_psk_tunnel() -> None:
    spec = parse_lab(auth="cert", spokes=2, pskSpokes=[2])
    cert, psk = (payload.hub_side(spec, spoke_tunnel(spec, spoke)) for spoke in spec.plan.spokes)
    assert [f["path"] for f in cert.files(None)] == [names.conn_conf_path("hub-spoke1"), names.LAB_UPDOWN]
    assert conn_options(cert.files(None)[0]["content"])["leftcert"] == names.cert_nickname(names.HUB)
    assert [f["path"] for f in psk.files(PSK)] == [names.conn_conf_path("hub-spoke2"),
                                                   names.conn_secrets_path("hub-spoke2"), names.LAB_UPDOWN]
    with pytest.raises(ValueError, match="hub-spoke2 needs its pre-shared key"):
        psk.files(None)
    removed = [line for line in cert.down_script.splitlines() if line.startswith("rm ")]
    assert removed == [f"rm -f {names.conn_conf_path('hub-spoke1')}"]
    removed = [line for line in psk.down_script.splitlines() if line.startswith("rm ")]
    assert removed == [f"rm -f {names.conn_conf_path('hub-spoke2')} {names.conn_secrets_path('hub-spoke2')}"]


def test_the_hubs_pki_push() -> None:
    spec = parse_lab(auth="cert", spokes=3, revokedSpokes=[3, 1])
    hub_pki = payload.hub_pki(spec)
    files = {f["path"]: f for f in hub_pki.files(CREDENTIALS, "Q1JM")}
    assert files[names.pki_bundle_path(names.HUB)]["mode"] == "0600"
    assert files[names.PKI_CRL_PATH]["content"] == "Q1JM" and files[names.PKI_CA_PATH]["mode"] == "0644"
    for script in (hub_pki.up_script, hub_pki.down_script):
        subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    # The revoked spokes' conns, and only theirs, are ended once the hub's NSS holds the new CRL.
    pushed = hub_pki.up_script + "".join(f["content"] for f in files.values())
    assert "hub-spoke1" in pushed and "hub-spoke3" in pushed and "hub-spoke2" not in pushed
    assert "hub-spoke" not in "".join(payload.hub_pki(parse_lab(auth="cert")).files(CREDENTIALS, "Q1JM")[i]["content"]
                                      for i in range(2)) + payload.hub_pki(parse_lab(auth="cert")).up_script
