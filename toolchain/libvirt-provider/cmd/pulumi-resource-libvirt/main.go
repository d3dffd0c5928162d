// pulumi-resource-libvirt: the libvirt resource plugin the Pulumi engine
// starts for the pulumi_libvirt Python SDK, built here because the upstream
// provider module is not reachable (see libvirtinfo). It serves the
// bridged Terraform provider with the schema tfgen generated, which
// scripts/toolchain.sh writes to schema-embed.json next to this file before
// building.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"lab.local/pulumi-libvirt/libvirtinfo"
)

//go:embed schema-embed.json
var schema []byte

func main() { tfbridge.Main("libvirt", libvirtinfo.Version, libvirtinfo.Provider(), schema) }
