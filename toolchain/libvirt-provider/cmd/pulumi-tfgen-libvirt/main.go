// pulumi-tfgen-libvirt: generates the Pulumi schema of the libvirt plugin
// from the mapping in libvirtinfo. scripts/toolchain.sh runs it at build time
// only (`schema --out DIR`) and embeds the result in pulumi-resource-libvirt,
// as upstream pulumi-libvirt's tfgen does; it is not installed.
package main

import (
	"os"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"lab.local/pulumi-libvirt/libvirtinfo"
)

func main() {
	info := libvirtinfo.Provider()
	info.UpstreamRepoPath = os.Getenv("UPSTREAM_REPO_PATH") // docs for the schema's descriptions
	tfgen.Main("libvirt", libvirtinfo.Version, info)
}
