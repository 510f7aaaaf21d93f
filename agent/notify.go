package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Notice tells a device's user what to fix and by when: the settings of a
// guided policy that fail, each with its deadline, after which the agent
// fixes them itself.
type Notice struct {
	Pending []PendingSetting
}

// PendingSetting is one setting waiting for the user.
type PendingSetting struct {
	Setting     string
	RemediateBy time.Time
}

// Text is the notice as one message: a title line, then a line per setting.
func (n Notice) Text() (title, body string) {
	title = "Your device needs attention"
	var b strings.Builder
	for i, p := range n.Pending {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: fix it by %s, or it will be changed for you then.", p.Setting, p.RemediateBy.UTC().Format("2006-01-02 15:04 MST"))
	}
	return title, b.String()
}

// Notifier tells the device's user about a Notice. On Linux it writes to
// every logged-in terminal and shows a desktop notification where a
// desktop session runs (LinuxNotifier); on Android the app posts a
// notification.
type Notifier interface {
	Notify(ctx context.Context, n Notice) error
}

// LinuxNotifier notifies the users of a Linux host through its Runner:
// "wall" to every logged-in terminal, and "notify-send" in each desktop
// session, found as a session bus socket /run/user/UID/bus, run as that
// user with runuser. Root is the host's file system, as for the enforcer.
type LinuxNotifier struct {
	Root   string
	Runner Runner
}

var _ Notifier = LinuxNotifier{}

// Notify implements Notifier. It fails only when no channel worked.
func (l LinuxNotifier) Notify(ctx context.Context, n Notice) error {
	if l.Runner == nil || len(n.Pending) == 0 {
		return nil
	}
	title, body := n.Text()
	var errs []error
	delivered := false
	if _, err := l.Runner.Run(ctx, Command{Name: "wall", Args: []string{title + "\n" + body}}); err != nil {
		errs = append(errs, err)
	} else {
		delivered = true
	}
	for _, s := range l.desktopSessions() {
		_, err := l.Runner.Run(ctx, Command{Name: "runuser", Args: []string{"-u", s.user, "--",
			"env", "DBUS_SESSION_BUS_ADDRESS=unix:path=" + s.bus,
			"notify-send", "--urgency=critical", "--app-name=Doorbell", title, body}})
		if err != nil {
			errs = append(errs, err)
		} else {
			delivered = true
		}
	}
	if !delivered && len(errs) > 0 {
		return fmt.Errorf("notifying the user: %w", errors.Join(errs...))
	}
	return nil
}

type desktopSession struct{ user, bus string }

// desktopSessions lists the users with a session bus, sorted by uid.
func (l LinuxNotifier) desktopSessions() []desktopSession {
	root := l.Root
	if root == "" {
		root = "/"
	}
	entries, err := os.ReadDir(filepath.Join(root, "run/user"))
	if err != nil {
		return nil
	}
	users := passwdNames(filepath.Join(root, "etc/passwd"))
	var uids []int
	for _, e := range entries {
		uid, err := strconv.Atoi(e.Name())
		if err != nil || uid == 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "run/user", e.Name(), "bus")); err == nil && users[uid] != "" {
			uids = append(uids, uid)
		}
	}
	sort.Ints(uids)
	out := make([]desktopSession, 0, len(uids))
	for _, uid := range uids {
		out = append(out, desktopSession{user: users[uid], bus: fmt.Sprintf("/run/user/%d/bus", uid)})
	}
	return out
}

// passwdNames maps uids to user names from a passwd file.
func passwdNames(path string) map[int]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[int]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		if uid, err := strconv.Atoi(f[2]); err == nil {
			out[uid] = f[0]
		}
	}
	return out
}
