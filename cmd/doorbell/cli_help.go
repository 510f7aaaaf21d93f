package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// examples are shown by `doorbell <command> --help`, keyed by the command
// word. A command without examples still gets its usage and flags.
var examples = map[string]string{
	"serve": `  doorbell serve                                  # TLS on every interface, data in ./doorbell-data
  doorbell serve --tls off --http 127.0.0.1:8080 --mqtt 127.0.0.1:1883`,
	"agent": `  doorbell agent --enroll-url 'doorbell://enroll?server=...&pin=...&token=...'
  doorbell agent --server https://mdm:8080 --server-pin sha256/... --enroll-token T --enforcer linux`,
	"sim": `  doorbell sim --server http://127.0.0.1:8080 --devices 100`,
	"devices": `  doorbell devices --state NON_COMPLIANT
  doorbell devices show 3f2a...       # state, versions, and which settings are failing
  doorbell devices rm 3f2a...         # forget the device (admin)`,
	"policy": `  doorbell policy show 3f2a...
  doorbell policy set 3f2a... cameraDisabled=true passwordMinLength=8
  doorbell policy unset 3f2a... cameraDisabled    # inherit from a group again`,
	"watch": `  doorbell watch --json`,
	"tokens": `  doorbell tokens
  doorbell tokens create ci --role viewer
  doorbell tokens rm ci`,
	"version": `  doorbell version`,
	"inventory": `  doorbell inventory show 3f2a...
  doorbell inventory packages openssl
  doorbell inventory facts kernel
  doorbell inventory refresh 3f2a...`,
	"commands": `  doorbell commands send 3f2a... lock --wait
  doorbell commands send --group kiosks reboot
  doorbell commands ls 3f2a...
  doorbell commands cancel 7c1d...`,
	"revisions": `  doorbell revisions group kiosks
  doorbell revisions show group kiosks 3
  doorbell revisions rollback device 3f2a... 2`,
	"backup": `  doorbell backup --out doorbell-$(date +%F).db --data ./doorbell-data      # a stopped server
  doorbell backup --out doorbell-$(date +%F).db --server https://mdm:8080 --server-pin sha256/...`,
	"migrate": `  doorbell migrate --data-dir ./doorbell-data --to postgres://doorbell@db/doorbell   # stop the server first`,
	"groups": `  doorbell groups
  doorbell groups create kiosks --priority 10
  doorbell groups show kiosks
  doorbell groups set kiosks --priority 20 --name lobby-kiosks
  doorbell groups policy kiosks cameraDisabled=true --mode monitor
  doorbell groups add kiosks 3f2a... 9b1c...
  doorbell groups remove kiosks 9b1c...
  doorbell groups rm kiosks`,
	"explain":       `  doorbell explain 3f2a...`,
	"history":       `  doorbell history 3f2a... --limit 20`,
	"audit":         `  doorbell audit --limit 50`,
	"enroll-tokens": "  doorbell enroll-tokens\n  doorbell enroll-tokens create --expires-in 1h --max-uses 10 --qr enroll.png\n  doorbell enroll-tokens rm 4be0c1d2",
}

// wantsHelp reports whether args ask for help (-h, -help, --help) before
// a "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// printHelp prints fs's usage and flags, then the command's examples.
func printHelp(fs *flag.FlagSet) {
	fs.Usage()
	if ex := examples[strings.Fields(fs.Name() + " x")[0]]; ex != "" {
		fmt.Fprintf(fs.Output(), "\nexamples:\n%s\n", ex)
	}
}

// parseQuiet parses args without the flag package's usage dump: a bad flag
// is one line naming the command and how to get its help.
func parseQuiet(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if err != nil {
		return fmt.Errorf("%s: %v\nRun 'doorbell %s --help' for its flags and examples.", fs.Name(), err, strings.Fields(fs.Name() + " x")[0])
	}
	return nil
}
