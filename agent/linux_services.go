package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// unitState is what systemctl show says about a unit.
type unitState struct {
	found   bool // LoadState is not "not-found"
	enabled bool // UnitFileState enabled or enabled-runtime
	running bool // ActiveState active, reloading or activating
	masked  bool // LoadState or UnitFileState masked
}

// unitStatus reads one unit's state with systemctl show.
func (e *LinuxEnforcer) unitStatus(ctx context.Context, unit string) (unitState, error) {
	out, err := e.runCmd(ctx, "systemctl", "show", "--property=LoadState,UnitFileState,ActiveState", "--", unit)
	if err != nil {
		return unitState{}, err
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	load, file, active := props["LoadState"], props["UnitFileState"], props["ActiveState"]
	if load == "" {
		return unitState{}, fmt.Errorf("systemctl show %s: no LoadState in %q", unit, firstLine(out))
	}
	return unitState{
		found:   load != "not-found",
		enabled: file == "enabled" || file == "enabled-runtime",
		running: active == "active" || active == "reloading" || active == "activating",
		masked:  load == "masked" || strings.HasPrefix(file, "masked"),
	}, nil
}

// enforceService makes one unit match want: unmask or mask first, then
// enable or disable, then start or stop.
func (e *LinuxEnforcer) enforceService(ctx context.Context, want proto.Service) error {
	st, err := e.unitStatus(ctx, want.Name)
	if err != nil {
		return err
	}
	if !st.found && !st.masked {
		if want.Enabled != nil && *want.Enabled || want.Running != nil && *want.Running {
			return fmt.Errorf("%s: no such unit (is its package installed?)", want.Name)
		}
	}
	var steps [][]string
	if want.Masked != nil && *want.Masked != st.masked {
		if *want.Masked {
			steps = append(steps, []string{"mask", "--now"})
		} else {
			steps = append(steps, []string{"unmask"})
		}
	}
	if want.Enabled != nil && *want.Enabled != st.enabled {
		if *want.Enabled {
			steps = append(steps, []string{"enable"})
		} else {
			steps = append(steps, []string{"disable"})
		}
	}
	if want.Running != nil && *want.Running != st.running {
		if *want.Running {
			steps = append(steps, []string{"start"})
		} else {
			steps = append(steps, []string{"stop"})
		}
	}
	for _, s := range steps {
		if _, err := e.runCmd(ctx, "systemctl", append(s, "--", want.Name)...); err != nil {
			return err
		}
	}
	return nil
}

// enforceServices makes every unit of want match, then reads back and
// fails for every unit still not as wanted.
func (e *LinuxEnforcer) enforceServices(ctx context.Context, h linuxHost, want []proto.Service) error {
	if !h.systemd {
		return errors.New(h.systemdWhy)
	}
	var errs []error
	for _, s := range want {
		if err := e.enforceService(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	got, err := e.observeServices(ctx, h, want)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var wrong []string
	for i, s := range want {
		if d := serviceDiff(s, got[i]); d != "" {
			wrong = append(wrong, s.Name+" is "+d)
		}
	}
	if len(wrong) > 0 {
		errs = append([]error{fmt.Errorf("not in effect: %s", strings.Join(wrong, "; "))}, errs...)
	}
	return errors.Join(errs...)
}

// serviceDiff describes how got differs from want, "" when it does not.
func serviceDiff(want, got proto.Service) string {
	var d []string
	for _, f := range []struct {
		name      string
		want, got *bool
	}{{"enabled", want.Enabled, got.Enabled}, {"running", want.Running, got.Running}, {"masked", want.Masked, got.Masked}} {
		if f.want != nil && (f.got == nil || *f.got != *f.want) {
			if f.got != nil && *f.got {
				d = append(d, f.name)
			} else {
				d = append(d, "not "+f.name)
			}
		}
	}
	return strings.Join(d, ", ")
}

// observeServices reads back each unit of scope, in order, with the fields
// scope manages.
func (e *LinuxEnforcer) observeServices(ctx context.Context, h linuxHost, scope []proto.Service) ([]proto.Service, error) {
	if !h.systemd {
		return nil, errors.New(h.systemdWhy)
	}
	out := make([]proto.Service, 0, len(scope))
	for _, s := range scope {
		st, err := e.unitStatus(ctx, s.Name)
		if err != nil {
			return nil, err
		}
		o := proto.Service{Name: s.Name}
		if s.Enabled != nil {
			o.Enabled = &st.enabled
		}
		if s.Running != nil {
			o.Running = &st.running
		}
		if s.Masked != nil {
			o.Masked = &st.masked
		}
		out = append(out, o)
	}
	return out, nil
}
