// goresults: how Go libcni parses, converts and writes results, for the
// expectations of tests/unit/test_result.py (testdata/go-results-1.3.0.json).
// Reads {"name": "<result JSON text>", ...} on stdin; writes, for every source and
// every target version, json.Marshal of CreateFromBytes + GetAsVersion (or
// the error), plus the Print() form of each source.  Built on
// ../shared/thirdparty/cni (v1.3.0) by hand:
//
//	GO111MODULE=off GOPATH=<gopath with containernetworking/cni> go run . < sources.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/containernetworking/cni/pkg/types/create"
)

func main() {
	var sources map[string]string
	if err := json.NewDecoder(os.Stdin).Decode(&sources); err != nil {
		panic(err)
	}
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	sort.Strings(names)
	targets := []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "", "2.0.0"}
	out := map[string]interface{}{}
	for _, name := range names {
		parsed, err := create.CreateFromBytes([]byte(sources[name]))
		if err != nil {
			out[name+" parse"] = []string{"ERR", err.Error()}
			continue
		}
		pretty, _ := json.MarshalIndent(parsed, "", "    ")
		out[name+" print"] = string(pretty)
		for _, target := range targets {
			converted, err := parsed.GetAsVersion(target)
			if err != nil {
				out[name+" "+target] = []string{"ERR", err.Error()}
				continue
			}
			data, err := json.Marshal(converted)
			if err != nil {
				out[name+" "+target] = []string{"ERR", err.Error()}
				continue
			}
			out[name+" "+target] = string(data)
		}
	}
	data, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(data))
}
