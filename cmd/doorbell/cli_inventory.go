package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

const inventoryUsage = "doorbell inventory show ID | doorbell inventory packages NAME | doorbell inventory facts FACT | doorbell inventory refresh ID  [--server URL --token T --json]"

// runInventory shows device inventories and answers fleet questions
// through /devices/{id}/inventory and /inventory/*.
func runInventory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "")
	var o opFlags
	fs := newFlagSet("inventory "+sub, stderr, inventoryUsage)
	o.register(fs)
	var packages bool
	if sub == "show" {
		fs.BoolVar(&packages, "packages", false, "also list every installed package")
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if sub != "show" && sub != "packages" && sub != "facts" && sub != "refresh" {
		return fmt.Errorf("unknown inventory command %q; usage: %s", sub, inventoryUsage)
	}
	if err := wantArgs(pos, 1, inventoryUsage); err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		inv, err := c.Inventory(ctx, pos[0])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, inv)
		}
		return printInventory(stdout, inv, packages)
	case "packages":
		pv, err := c.PackageVersions(ctx, pos[0])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, pv)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "FORMAT\tVERSION\tDEVICES")
		for _, v := range pv.Versions {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", safeText(v.Format), safeText(v.Version), v.Devices)
		}
		fmt.Fprintf(tw, "\t%s on %d devices\t\n", safeText(pv.Name), pv.Devices)
		return tw.Flush()
	case "facts":
		fd, err := c.FactDistribution(ctx, pos[0])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, fd)
		}
		tw := newTable(stdout)
		fmt.Fprintf(tw, "%s\tDEVICES\n", strings.ToUpper(safeText(fd.Fact)))
		for _, v := range fd.Values {
			fmt.Fprintf(tw, "%s\t%d\n", safeText(v.Value), v.Devices)
		}
		return tw.Flush()
	default: // refresh
		cmd, err := c.RefreshInventory(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "asked %s for its whole inventory: command %s (doorbell commands show %s)\n",
			safeText(pos[0]), safeText(cmd.CommandID), safeText(cmd.CommandID))
		return nil
	}
}

func printInventory(w io.Writer, d proto.DeviceInventory, packages bool) error {
	tw := newTable(w)
	inv := d.Inventory
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, safeText(v))
		}
	}
	row("device", d.DeviceID)
	if len(d.Sections) == 0 {
		row("inventory", "none received yet")
		return tw.Flush()
	}
	row("updated", fmtTime(&d.UpdatedAt))
	if s := inv.System; s != nil {
		row("hostname", s.Hostname)
		row("os", strings.TrimSpace(s.OSName+" ("+s.OSID+" "+s.OSVersion+")"))
		row("kernel", s.Kernel)
		row("arch", s.Arch)
		row("booted", fmtTime(&s.BootTime))
	}
	if h := inv.Hardware; h != nil {
		row("vendor", h.Vendor)
		row("model", h.Model)
		row("serial", h.Serial)
		if h.CPUCount > 0 {
			row("cpu", fmt.Sprintf("%d x %s", h.CPUCount, h.CPUModel))
		}
		if h.MemoryBytes > 0 {
			row("memory", fmt.Sprintf("%.1f GiB", float64(h.MemoryBytes)/(1<<30)))
		}
	}
	if a := inv.Android; a != nil {
		row("security patch", a.SecurityPatch)
		if a.APILevel > 0 {
			row("api level", strconv.Itoa(a.APILevel))
		}
	}
	if dk := inv.Disks; dk != nil {
		enc := "unknown"
		if dk.RootEncrypted != nil {
			enc = yesNo(*dk.RootEncrypted)
		}
		row("root encrypted", enc)
		for _, x := range dk.Disks {
			row("disk", fmt.Sprintf("%s %s %.1f GB", x.Name, x.Type, float64(x.SizeBytes)/1e9))
		}
	}
	if n := inv.Network; n != nil {
		for _, i := range n.Interfaces {
			row("interface", strings.TrimSpace(fmt.Sprintf("%s %s %s", i.Name, i.MAC, strings.Join(i.Addresses, " "))))
		}
	}
	if f := inv.Firewall; f != nil {
		fw := "none found"
		if f.Backend != "" {
			fw = f.Backend + " " + map[bool]string{true: "active", false: "inactive"}[f.Active]
		}
		row("firewall", fw)
	}
	if u := inv.Users; u != nil {
		var names []string
		for _, x := range u.Users {
			if !x.System {
				names = append(names, x.Name)
			}
		}
		row("users", fmt.Sprintf("%d (%d regular: %s)", len(u.Users), len(names), strings.Join(names, ", ")))
	}
	if un := inv.Units; un != nil {
		running := 0
		for _, x := range un.Units {
			if x.Running {
				running++
			}
		}
		row("services", fmt.Sprintf("%d enabled or running, %d running", len(un.Units), running))
	}
	if p := inv.Packages; p != nil {
		row("packages", fmt.Sprintf("%d (%s)", len(p.Packages), p.Format))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SECTION\tCHANGED\tRECEIVED")
	for _, s := range proto.InventorySections {
		if m, ok := d.Sections[s]; ok {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s, fmtTime(&m.ChangedAt), fmtTime(&m.ReceivedAt))
		}
	}
	if packages && inv.Packages != nil {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tARCH")
		for _, p := range inv.Packages.Packages {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", safeText(p.Name), safeText(p.Version), safeText(p.Arch))
		}
	}
	return tw.Flush()
}

// safeText shows a string a device sent so it cannot move the cursor,
// recolour the terminal or break the table: quoted with Go escapes when it
// holds anything but printable characters and spaces.
func safeText(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// whereFlag collects repeated --where expressions.
type whereFlag []string

func (w *whereFlag) String() string     { return strings.Join(*w, " and ") }
func (w *whereFlag) Set(s string) error { *w = append(*w, s); return nil }

// values turns the expressions into GET /devices query parameters.
func (w whereFlag) values() (map[string][]string, error) {
	out := map[string][]string{}
	for _, e := range w {
		v, err := client.ParseWhere(e)
		if err != nil {
			return nil, err
		}
		for k, vs := range v {
			out[k] = append(out[k], vs...)
		}
	}
	return out, nil
}
