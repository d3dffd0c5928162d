"""Entry point: read stack config, build the lab, export what users need."""
import pulumi

from components.lab import Lab, LabArgs
from lablib import names
from lablib.config import PLAIN_KEYS, SECRET_KEYS, ConfigError, parse_config
from lablib.hostcheck import check_logins
from lablib.sdk_tuning import tune_sdk

tune_sdk()  # before any resource: what the SDK does per resource, hundreds of times

config = pulumi.Config()
# Secrets are read raw only to validate them; from here on they are Pulumi secrets.
secrets = {key: pulumi.runtime.get_config(f"{config.name}:{key}") for key in SECRET_KEYS}
try:
    spec = parse_config({key: config.get(key) for key in PLAIN_KEYS}, secrets)
    check_logins(spec.hosts.hosts)  # an unreachable host: one error naming it, before any resource
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None

lab = Lab(names.PROGRAM_ROOT, LabArgs(
    stack=pulumi.get_stack(),
    spec=spec,
    master_secret=pulumi.Output.secret(secrets["masterSecret"]),
    ssh_private_key=pulumi.Output.secret(secrets["sshPrivateKey"]),
))

pulumi.export("nodes", lab.nodes)
pulumi.export("tunnelMtu", spec.mtu.tunnel_mtu)
pulumi.export("innerMtu", spec.mtu.inner_mtu)
pulumi.export("inventory", lab.inventory)
pulumi.export("topology", lab.topology)
if lab.pki is not None:  # what `labctl verify` compares each site's certificate with
    pulumi.export("certificates", lab.pki.certificates)
    pulumi.export("revoked", lab.pki.revoked)
if lab.hosts:
    pulumi.export("hosts", lab.hosts)
