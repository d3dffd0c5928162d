"""The lab's CrossGuard pack: `pulumi preview --stack NAME --policy-pack policy` runs this file."""
from pulumi_policy import EnforcementLevel, PolicyPack

from lab_policies import POLICIES, plumbing

plumbing.keep_secret_markers()  # pulumi-policy 1.21 would hide which inputs are secrets
PolicyPack(
    name="gre-ipsec-lab",
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,  # each policy sets its own level; see README.md
)
