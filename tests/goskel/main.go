// goskel: a tiny CNI plugin on Go's pkg/skel (containernetworking/cni
// v1.3.0, ../shared/thirdparty/cni), the reference for the skel protocol
// suite (tests/integration/test_skel_protocol.py).  Its twin on
// libcni_py.skel is testdata/plugins/skelproto; both do the same:
//
//   - every command writes "called <COMMAND>" to stderr when it runs;
//   - config "fail": {"code", "msg", "details"} fails with that error;
//   - config "plainError": "text" fails with a plain Go error (code 999);
//   - ADD prints a result (interface CNI_IFNAME in CNI_NETNS, address
//     "address", default 10.99.0.2/24) in the configuration's version.
//
// SKEL_VERSIONS (comma-separated) sets the supported versions (default: all),
// SKEL_ABOUT the about text (default: none).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

type conf struct {
	types.NetConf
	Fail       *types.Error `json:"fail"`
	PlainError string       `json:"plainError"`
	Address    string       `json:"address"`
}

func command(name string) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		fmt.Fprintf(os.Stderr, "called %s\n", name)
		var c conf
		if err := json.Unmarshal(args.StdinData, &c); err != nil {
			return err
		}
		if c.Fail != nil {
			return c.Fail
		}
		if c.PlainError != "" {
			return errors.New(c.PlainError)
		}
		if name != "ADD" {
			return nil
		}
		address := c.Address
		if address == "" {
			address = "10.99.0.2/24"
		}
		ip, ipnet, err := net.ParseCIDR(address)
		if err != nil {
			return err
		}
		ipnet.IP = ip
		res := &current.Result{
			CNIVersion: current.ImplementedSpecVersion,
			Interfaces: []*current.Interface{{Name: args.IfName, Sandbox: args.Netns}},
			IPs:        []*current.IPConfig{{Address: *ipnet, Interface: current.Int(0)}},
		}
		confVersion, err := (&version.ConfigDecoder{}).Decode(args.StdinData)
		if err != nil {
			return err
		}
		return types.PrintResult(res, confVersion)
	}
}

func main() {
	info := version.All
	if list := os.Getenv("SKEL_VERSIONS"); list != "" {
		info = version.PluginSupports(strings.Split(list, ",")...)
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    command("ADD"),
		Del:    command("DEL"),
		Check:  command("CHECK"),
		GC:     command("GC"),
		Status: command("STATUS"),
	}, info, os.Getenv("SKEL_ABOUT"))
}
