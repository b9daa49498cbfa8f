// The project's reference peer (shared/peer/gocnitool/main.go), vendored so that
// benchmarks/bench.py can build it on a fresh machine.  One change: the result
// cache directory comes from CNI_CACHE_DIR when it is set (as libcni_py's cnitool
// reads it), so that the benchmark never writes the machine's /var/lib/cni.

// Peer for side-by-side measurement: a cnitool built on Go libcni (Debian's
// golang-github-appc-cni-dev). Same env vars as upstream cnitool:
// NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS.
//
//	gocnitool add|check|del <net> <netns>
//	gocnitool bench <net> <n> <par>   (n attachments: create netns, ADD, DEL; par at once)
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
)

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func rt(netns, id, ifname string) *libcni.RuntimeConf {
	r := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: ifname}
	if a := os.Getenv("CNI_ARGS"); a != "" {
		for _, kv := range strings.Split(a, ";") {
			p := strings.SplitN(kv, "=", 2)
			if len(p) == 2 {
				r.Args = append(r.Args, [2]string{p[0], p[1]})
			}
		}
	}
	if c := os.Getenv("CAP_ARGS"); c != "" {
		_ = json.Unmarshal([]byte(c), &r.CapabilityArgs)
	}
	return r
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: gocnitool add|check|del <net> <netns> | bench <net> <n> <par>")
		os.Exit(1)
	}
	conf, err := libcni.LoadConfList(env("NETCONFPATH", "/etc/cni/net.d"), os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(env("CNI_PATH", "/opt/cni/bin")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	ifname := env("CNI_IFNAME", "eth0")
	switch os.Args[1] {
	case "add":
		netns, _ := filepath.Abs(os.Args[3])
		res, err := cni.AddNetworkList(ctx, conf, rt(netns, containerID(netns), ifname))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = res.Print()
	case "check":
		netns, _ := filepath.Abs(os.Args[3])
		if err := cni.CheckNetworkList(ctx, conf, rt(netns, containerID(netns), ifname)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "del":
		netns, _ := filepath.Abs(os.Args[3])
		if err := cni.DelNetworkList(ctx, conf, rt(netns, containerID(netns), ifname)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "bench":
		n, _ := strconv.Atoi(os.Args[3])
		par, _ := strconv.Atoi(os.Args[4])
		sem := make(chan struct{}, par)
		var wg sync.WaitGroup
		var mu sync.Mutex
		fails := 0
		start := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				name := fmt.Sprintf("gobench-%d", i)
				if err := exec.Command("ip", "netns", "add", name).Run(); err != nil {
					mu.Lock()
					fails++
					mu.Unlock()
					return
				}
				defer exec.Command("ip", "netns", "del", name).Run()
				r := rt("/var/run/netns/"+name, name, ifname)
				if _, err := cni.AddNetworkList(ctx, conf, r); err != nil {
					fmt.Fprintln(os.Stderr, "add:", err)
					mu.Lock()
					fails++
					mu.Unlock()
					return
				}
				if err := cni.DelNetworkList(ctx, conf, r); err != nil {
					fmt.Fprintln(os.Stderr, "del:", err)
					mu.Lock()
					fails++
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		el := time.Since(start).Seconds()
		fmt.Printf("attachments=%d par=%d fails=%d seconds=%.3f per_s=%.1f\n", n, par, fails, el, float64(n)/el)
	}
}

// cnitool derives the container ID from the netns path the same way.
func containerID(netns string) string {
	s := sha512.Sum512([]byte(netns))
	return fmt.Sprintf("cnitool-%x", s[:10])
}
