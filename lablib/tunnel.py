"""The tunnel model: both conn ends of a spoke's tunnel and the GRE ports between them.

Both ends are built here only, from the same spec; the Tunnel component
registers them as props so that tests and policies can check that they
agree, and lablib.payload renders them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from lablib import names
from lablib.addressing import Site
from lablib.config import LIBRESWAN_RETRANSMIT_TIMEOUT, LabSpec
from lablib.crypto import CERT_KEYS
from lablib.mtu import MtuPlan
from lablib.remedies import AS_DEPLOYED_MTUS, COMPUTED_MTU, KERNEL_GRE, TCP, WAN_MTU_TUNNEL


@dataclass(frozen=True)
class ConnEnd:
    """One side's libreswan conn: what this side says about itself and its peer."""

    conn_name: str
    local_id: str
    remote_id: str
    local_address: str  # an address, or %defaultroute behind NAT
    remote_address: str  # the hub's WAN address, or %any on the hub
    local_overlay: str
    remote_overlay: str
    ike: str
    esp: str
    auto: str  # the hub waits (add), spokes dial out (start)
    dpd_action: str
    dpd_delay: int
    retransmit_timeout: int
    interface_mode: str
    tunnel_mark: int
    interface_name: str
    auth: str = "psk"  # or "cert": this end signs with its own certificate, the peer's from the same CA
    authby: str = "secret"  # libreswan's authby= (for a certificate, the key type's: ipsec.yaml)
    cert_nickname: str = ""  # this end's certificate in its NSS database (cert only)
    enable_tcp: bool = False  # a tcp spoke's end: IKE and ESP in TCP to the hub's port 4500 (RFC 8229)

    @property
    def uses_cert(self) -> bool:
        return self.auth == "cert"

    @property
    def says_retransmit_timeout(self) -> bool:
        """Only a timeout other than libreswan's own is written: existing stacks' conns stay as they were."""
        return self.retransmit_timeout != LIBRESWAN_RETRANSMIT_TIMEOUT

    @property
    def conf_path(self) -> str:
        return names.conn_conf_path(self.conn_name)

    @property
    def secrets_path(self) -> str:
        return names.conn_secrets_path(self.conn_name)

    def as_props(self) -> dict[str, object]:
        """The decisive parameters, as component props for tests and policies."""
        return {
            "connName": self.conn_name, "localId": self.local_id, "remoteId": self.remote_id,
            "localAddress": self.local_address, "remoteAddress": self.remote_address,
            "localOverlay": self.local_overlay, "remoteOverlay": self.remote_overlay,
            "ike": self.ike, "esp": self.esp, "interfaceMode": self.interface_mode,
            "tunnelMark": self.tunnel_mark, "interfaceName": self.interface_name,
            **({"retransmitTimeout": self.retransmit_timeout} if self.says_retransmit_timeout else {}),
            # Only for a certificate's end: a pre-shared key's keeps the props it always had.
            **({"auth": self.auth, "authby": self.authby, "certNickname": self.cert_nickname}
               if self.uses_cert else {}),
            **({"enableTcp": True} if self.enable_tcp else {}),
        }


@dataclass(frozen=True)
class GrePort:
    name: str
    local_ip: str
    remote_ip: str
    key: int | None
    df: bool = True  # OVS's df_default; as-deployed: false, so the GRE packet may fragment
    kernel: bool = False  # a kernel gretap device (kernel-gre's t0), not an OVS GRE port

    def as_props(self) -> dict[str, object]:
        return {"name": self.name, "localIp": self.local_ip, "remoteIp": self.remote_ip, "key": self.key,
                **({} if self.df else {"df": False}), **({"kernel": True} if self.kernel else {})}


@dataclass(frozen=True)
class SpokeTunnel:
    """One spoke's tunnel to the hub, both sides."""

    spoke: Site
    hub_end: ConnEnd
    spoke_end: ConnEnd
    hub_port: GrePort  # on the hub's bridge, towards the spoke
    spoke_port: GrePort  # on the spoke's bridge, towards the hub
    mtu: MtuPlan  # the spoke's own MTUs (spec.mtu_of)
    remedy: str = COMPUTED_MTU  # lablib.remedies.REMEDIES

    @property
    def as_deployed(self) -> bool:
        """Both ends keep the original MTUs: the route to the peer's overlay address locked to the
        spoke's tunnel MTU (its WAN MTU), GRE without DF (as-deployed, and tcp under its TCP)."""
        return self.remedy in AS_DEPLOYED_MTUS

    @property
    def tcp(self) -> bool:
        """ESP in TCP: the spoke dials the hub's TCP port 4500, the hub listens there."""
        return self.remedy == TCP

    @property
    def route_lock(self) -> bool:
        """The spoke's route to the hub is locked to its tunnel MTU, the WAN MTU (lablib.remedies)."""
        return self.remedy in WAN_MTU_TUNNEL


@dataclass(frozen=True)
class Landing:
    """The hub's landing conn. A new peer's IKE_SA_INIT names no ID, so pluto answers it on a
    template chosen by address alone; when that template was a spoke's own conn, that spoke's
    IKE SA, once up, ended (libreswan's uniqueids) the half-open SAs of other spokes parked on
    it, and each lost a retransmit timeout (docs/drills.md). No site has this conn's ID, so
    nothing is ever established on it; IKE_AUTH moves each peer to its own conn
    (tests/test_pluto_landing.py, libreswan 4.10 and 5.x)."""

    local_address: str
    local_id: str
    ike: str
    esp: str


def landing(spec: LabSpec) -> Landing | None:
    """The hub's landing conn, the same for every spoke's hub side; none in a lab with certificates:
    a certificate spoke answered on it did not get in (docs/drills.md says what was tried)."""
    hub, config = spec.plan.hub, spec.config
    if config.uses_certs:
        return None
    return Landing(local_address=str(hub.wan_address), local_id=hub.ike_id, ike=config.ike, esp=config.esp)


def _end(spec: LabSpec, local: Site, remote: Site, local_address: str, remote_address: str,
         interface_mode: str, auth: str) -> ConnEnd:
    """local's conn towards remote, through a route-based interface of local's own choice: the
    kind (VTI mark or XFRM interface ID) never shows on the wire, so the ends may differ. Both ends
    authenticate alike (auth: the spoke's)."""
    config, hub_side = spec.config, local.is_hub
    cert = auth == "cert"
    return ConnEnd(
        conn_name=names.conn_name(local.name, remote.name),
        local_id=local.ike_id,
        remote_id=remote.ike_id,
        local_address=local_address,
        remote_address=remote_address,
        local_overlay=str(local.overlay_address),
        remote_overlay=str(remote.overlay_address),
        ike=config.ike,
        esp=config.esp,
        auto="add" if hub_side else "start",
        dpd_action="clear" if hub_side else "restart",
        dpd_delay=config.dpd_delay,
        retransmit_timeout=config.retransmit_timeout,
        interface_mode=interface_mode,
        tunnel_mark=config.tunnel_mark,
        interface_name=names.tunnel_interface(interface_mode, config.tunnel_mark),
        auth=auth,
        authby=CERT_KEYS[config.cert_key].authby if cert else "secret",
        cert_nickname=names.cert_nickname(local.name) if cert else "",
    )


def _port(spec: LabSpec, local: Site, remote: Site, spoke: Site) -> GrePort:
    """The port on local's bridge towards remote; the spoke number keys the pair. A kernel-gre spoke's
    own is its kernel device t0 (the hub's port towards it stays OVS's)."""
    kernel = not local.is_hub and spec.config.remedy_of(spoke.number) == KERNEL_GRE
    return GrePort(
        name=names.KERNEL_GRE_DEVICE if kernel else remote.gre_port,
        local_ip=str(local.overlay_address),
        remote_ip=str(remote.overlay_address),
        key=spoke.number if spec.config.gre_key else None,
        df=spec.config.remedy_of(spoke.number) not in AS_DEPLOYED_MTUS,
        kernel=kernel,
    )


def spoke_tunnel(spec: LabSpec, spoke: Site) -> SpokeTunnel:
    """The hub accepts the spoke from any address (dynamic, NATed) by its ID; the spoke dials the hub.

    The hub serves every spoke through its own interfaceMode; a spoke's end takes the spoke's mode.
    The hub cannot serve both kinds at once: its shared VTI (remote any) takes in every ESP packet
    to the hub's WAN address, an XFRM interface's too, and the XFRM spoke's traffic dies there
    (measured on the ci lab: spoke1 out +210 B, in +0 B, ipsec0 RX dropped 57)."""
    hub, hub_wan = spec.plan.hub, str(spec.plan.hub.wan_address)
    auth = spec.config.auth_of(spoke.number)
    return SpokeTunnel(
        spoke=spoke,
        hub_end=_end(spec, hub, spoke, hub_wan, "%any", spec.config.interface_mode, auth),
        spoke_end=replace(_end(spec, spoke, hub, "%defaultroute", hub_wan, spec.config.mode_of(spoke.number), auth),
                          enable_tcp=spec.config.remedy_of(spoke.number) == TCP),
        hub_port=_port(spec, hub, spoke, spoke),
        spoke_port=_port(spec, spoke, hub, spoke),
        mtu=spec.mtu_of(spoke),
        remedy=spec.config.remedy_of(spoke.number),
    )
