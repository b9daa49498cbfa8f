// gopeer: a minimal Go cnitool built on the system's Go libcni (Debian's
// golang-github-appc-cni-dev), used by the test suite to check that
// libcni_py hands plugins the same stdin and environment and leaves the same
// cache files as Go libcni, and that each deletes what the other added.
//
//	gopeer add|check|del <network> <netns>
//
// Environment as Go's cnitool: NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS,
// CAP_ARGS; plus CNI_CACHE_DIR for the result cache (default /var/lib/cni).
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func env(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gopeer add|check|del <network> <netns>")
		os.Exit(2)
	}
	conf, err := libcni.LoadConfList(env("NETCONFPATH", "/etc/cni/net.d"), os.Args[2])
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(env("CNI_PATH", "/opt/cni/bin")), env("CNI_CACHE_DIR", ""), nil)
	netns, _ := filepath.Abs(os.Args[3])
	sum := sha512.Sum512([]byte(netns))
	rt := &libcni.RuntimeConf{
		ContainerID: fmt.Sprintf("cnitool-%x", sum[:10]),
		NetNS:       netns,
		IfName:      env("CNI_IFNAME", "eth0"),
	}
	if args := os.Getenv("CNI_ARGS"); args != "" {
		for _, pair := range strings.Split(args, ";") {
			kv := strings.Split(pair, "=")
			if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
				fail(fmt.Errorf("invalid CNI_ARGS pair %q", pair))
			}
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	if caps := os.Getenv("CAP_ARGS"); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "add":
		result, err := cni.AddNetworkList(ctx, conf, rt)
		if err != nil {
			fail(err)
		}
		_ = result.Print()
	case "check":
		if err := cni.CheckNetworkList(ctx, conf, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, conf, rt); err != nil {
			fail(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}
