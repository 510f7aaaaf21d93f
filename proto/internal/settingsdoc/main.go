// Command settingsdoc rewrites the settings table of docs/POLICY.md from
// the settings catalog (proto.Catalog). Run it with `go generate ./proto`.
package main

import (
	"fmt"
	"os"

	"github.com/doorbell-mdm/doorbell/proto"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: settingsdoc PATH/TO/POLICY.md")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := proto.ReplaceSettingsTable(string(b))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
