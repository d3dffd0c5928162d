// pulumi-language-python: a small Python language host for the Pulumi CLI,
// built on the SDK's python/toolchain package.
//
// Why it exists: the Go module proxy reachable from the lab machines refuses
// every version of the upstream host module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), and
// the CLI cannot run a Python program without one. Programs run through the
// SDK's pulumi-language-python-exec, plugins and policy packs
// (`--policy-pack`) through `python <dir>`, as upstream does. No code
// generation (`pulumi new`/`convert`).
//
// scripts/toolchain.sh copies this file into its throwaway CLI module
// (cmd/pulumi-language-python/main.go, module lab.local/pulumi-cli, which
// requires github.com/pulumi/pulumi/{pkg,sdk}/v3 at the CLI version) and
// builds it there; it does not build on its own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The exec shim exits with this code after showing the user a message itself.
const bailExitCode = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	exec    string // pulumi-language-python-exec, next to this binary
	engine  string
	tracing string
}

func main() {
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible endpoint")
	for _, f := range []string{"virtualenv", "root", "typechecker", "toolchain", "use-executor"} {
		flag.String(f, "", "obsolete, ignored")
	}
	flag.Parse()
	logging.InitLogging(false, 0, false)

	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(err)
	}
	h := &host{exec: filepath.Join(filepath.Dir(self), "pulumi-language-python-exec"), tracing: *tracing}
	if _, err := os.Stat(h.exec); err != nil {
		cmdutil.Exit(fmt.Errorf("missing executor: %w", err))
	}
	if flag.NArg() > 0 {
		h.engine = flag.Arg(0)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	stop := make(chan bool)
	go func() { <-ctx.Done(); cancel(); close(stop) }()
	if h.engine != "" { // exit when the engine goes away
		if err := rpcutil.Healthcheck(ctx, h.engine, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(err)
		}
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port) // the engine reads the port from stdout
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(err)
	}
}

// options maps Pulumi.yaml's runtime options onto the SDK's toolchain options.
func options(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	o := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	m := info.GetOptions().AsMap()
	if v, ok := m["virtualenv"].(string); ok {
		o.Virtualenv = v
	}
	switch m["toolchain"] {
	case nil, "pip":
		o.Toolchain = toolchain.Pip
	case "uv":
		o.Toolchain = toolchain.Uv
	case "poetry":
		o.Toolchain = toolchain.Poetry
	default:
		return o, fmt.Errorf("unsupported toolchain option %v", m["toolchain"])
	}
	switch m["typechecker"] {
	case nil:
	case "mypy":
		o.Typechecker = toolchain.TypeCheckerMypy
	case "pyright":
		o.Typechecker = toolchain.TypeCheckerPyright
	default:
		return o, fmt.Errorf("unsupported typechecker option %v", m["typechecker"])
	}
	return o, nil
}

func resolve(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, toolchain.PythonOptions, error) {
	o, err := options(info)
	if err != nil {
		return nil, o, err
	}
	tc, err := toolchain.ResolveToolchain(o)
	return tc, o, err
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engine = req.EngineAddress
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// Lists the pulumi-plugin.json files that installed distributions ship.
const listPluginsPy = `
import json, importlib.metadata as md
out = []
for d in md.distributions():
    for f in (d.files or []):
        if f.name == "pulumi-plugin.json" and len(f.parts) == 2:
            out.append({"pkg": d.metadata["Name"], "version": d.version, "path": str(d.locate_file(f))})
print(json.dumps(out))
`

// GetRequiredPackages: the resource plugins named by the pulumi-plugin.json
// of the program's Python packages (creating the virtualenv if it is missing).
func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, _, err := resolve(req.Info)
	if err != nil {
		return nil, err
	}
	if err := tc.EnsureVenv(ctx, req.Info.ProgramDirectory, false, true, os.Stderr, os.Stderr); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginsPy)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing python packages: %w", err)
	}
	var found []struct{ Pkg, Version, Path string }
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, f := range found {
		p, err := plugin.LoadPulumiPluginJSON(f.Path)
		if err != nil || !p.Resource {
			continue
		}
		name, ver := p.Name, p.Version
		if name == "" {
			name = strings.TrimPrefix(strings.TrimPrefix(f.Pkg, "pulumi-"), "pulumi_")
		}
		if ver == "" {
			ver = f.Version
		}
		if !strings.HasPrefix(ver, "v") {
			ver = "v" + ver
		}
		dep := &pulumirpc.PackageDependency{Name: name, Version: ver, Kind: "resource", Server: p.Server}
		if z := p.Parameterization; z != nil {
			dep.Parameterization = &pulumirpc.PackageParameterization{Name: z.Name, Version: z.Version, Value: z.Value}
		}
		resp.Packages = append(resp.Packages, dep)
	}
	return resp, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, o, err := resolve(req.Info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	// runtime.options.typechecker: check the program before running it.
	if o.Typechecker != toolchain.TypeCheckerNone {
		checker := "pyright"
		if o.Typechecker == toolchain.TypeCheckerMypy {
			checker = "mypy"
		}
		c, err := tc.ModuleCommand(ctx, checker, req.Info.ProgramDirectory)
		if err != nil {
			return nil, err
		}
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("%s failed: %v", checker, err)}, nil
		}
	}

	args := []string{h.exec}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engine)
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(append(args, entry), req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	if cfg == nil {
		cfg = map[string]string{} // the shim wants a JSON object, never null
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	keysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(cfgJSON), "PULUMI_CONFIG_SECRET_KEYS="+string(keysJSON))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		_, _ = os.Stdout.Sync(), os.Stderr.Sync()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the python executor: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// RunPlugin runs a Python plugin or policy pack as `python <dir> args...`
// (its __main__.py). As upstream, a plugin's virtualenv defaults to `venv`.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	o, err := options(req.Info)
	if err != nil {
		return err
	}
	if o.Toolchain == toolchain.Pip && o.Virtualenv == "" {
		o.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(o)
	if err != nil {
		return err
	}
	cmd, err := tc.Command(server.Context(), append([]string{req.Info.ProgramDirectory}, req.Args...)...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Dir = req.Pwd
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, req.Env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return server.Send(&pulumirpc.RunPluginResponse{
				//nolint:gosec // exit codes fit in 8 bits
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exitErr.ExitCode())},
			})
		}
		return fmt.Errorf("could not run plugin: %w", err)
	}
	return closer.Close()
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	o, err := options(req.Info)
	if err != nil {
		return err
	}
	if req.IsPlugin && o.Toolchain == toolchain.Pip && o.Virtualenv == "" {
		o.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(o)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.IsTerminal)
	if err != nil {
		return err
	}
	defer closer.Close()
	if err := tc.InstallDependencies(server.Context(), req.Info.ProgramDirectory,
		req.UseLanguageVersionTools, true, stdout, stderr); err != nil {
		return err
	}
	return closer.Close()
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	info := req.GetInfo()
	if info == nil {
		info = &pulumirpc.ProgramInfo{}
	}
	tc, _, err := resolve(info)
	if err != nil {
		return nil, err
	}
	a, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: a.PythonExecutable, Version: a.PythonVersion.String()}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, _, err := resolve(req.Info)
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pkgs {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}
