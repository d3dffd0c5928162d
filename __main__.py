"""Entry point: read stack config, build the lab, export what users need."""
import gc

import pulumi

from components.lab import Lab, LabArgs
from lablib.config import PLAIN_KEYS, SECRET_KEYS, ConfigError, parse_config

FULL_COLLECTION_EVERY = 1000  # generation-1 collections (CPython's default: 10)

# What the SDK makes while declaring the lab (Outputs, futures, resource state) lives until
# the run ends, so CPython's full collections rescan an ever larger heap and free nothing:
# half of the time to plan 250 spokes. Young garbage is still collected as usual.
gc.set_threshold(*gc.get_threshold()[:2], FULL_COLLECTION_EVERY)

config = pulumi.Config()
# Secrets are read raw only to validate them; from here on they are Pulumi secrets.
secrets = {key: pulumi.runtime.get_config(f"{config.name}:{key}") for key in SECRET_KEYS}
try:
    spec = parse_config({key: config.get(key) for key in PLAIN_KEYS}, secrets)
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None

lab = Lab("lab", LabArgs(
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
