// Package libvirtinfo maps terraform-provider-libvirt onto the tokens of the
// pulumi-libvirt 0.5.4 Python SDK (libvirt:index/<camel>:<Pascal>).
//
// Why it exists: the Go module proxy reachable from the lab machines refuses
// github.com/pulumi/pulumi-libvirt/provider, so scripts/toolchain.sh builds
// the pulumi-resource-libvirt plugin itself from terraform-provider-libvirt
// (the version pulumi-libvirt 0.5.4 wraps) and pulumi-terraform-bridge. This
// is the equivalent of upstream's provider/resources.go; as there, the
// provider is the plain Terraform provider behind the bridge's shim, so it
// behaves like the real one (Configure fails when no libvirt daemon is
// reachable at the configured uri).
//
// scripts/toolchain.sh copies this tree into its build module
// (lab.local/pulumi-libvirt) and builds it there.
package libvirtinfo

import (
	"github.com/dmacvicar/terraform-provider-libvirt/libvirt"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
)

// Version is set with -ldflags -X at build time.
var Version = "0.0.0"

func Provider() tfbridge.ProviderInfo {
	prov := tfbridge.ProviderInfo{
		P:           shimv2.NewProvider(libvirt.Provider()),
		Name:        "libvirt",
		Version:     Version,
		DisplayName: "libvirt",
		Publisher:   "Pulumi",
		Description: "A Pulumi package for creating and managing libvirt resources.",
		License:     "Apache-2.0",
		GitHubOrg:   "dmacvicar",
		Config: map[string]*tfbridge.SchemaInfo{
			"uri": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"LIBVIRT_DEFAULT_URI"}}},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			// The SDK spells this CloudInitDisk, not the computed CloudinitDisk.
			"libvirt_cloudinit_disk": {
				Tok:  "libvirt:index/cloudInitDisk:CloudInitDisk",
				Docs: &tfbridge.DocInfo{Source: "cloudinit.html.markdown"},
			},
			"libvirt_ignition": {Docs: &tfbridge.DocInfo{Source: "coreos_ignition.html.markdown"}},
		},
	}
	prov.MustComputeTokens(tokens.SingleModule("libvirt_", "index", tokens.MakeStandard("libvirt")))
	prov.SetAutonaming(255, "-")
	return prov
}
