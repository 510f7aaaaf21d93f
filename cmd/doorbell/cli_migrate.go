package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
)

// migratePartSize is how many items (a device with each of its transitions,
// a group, a token, an audit entry, ...) one part of the copy holds.
var migratePartSize = 1000

// migrateCounts is what a migration copied, for its summary line.
type migrateCounts struct {
	devices, groups, operators, enrollments, audit, inventories int
}

func (n *migrateCounts) add(d store.Dump) {
	n.devices += len(d.Devices)
	n.groups += len(d.Groups)
	n.operators += len(d.OperatorTokens)
	n.enrollments += len(d.EnrollmentTokens)
	n.audit += len(d.Audit)
	n.inventories += len(d.Inventories)
}

// runMigrate copies a bbolt data dir into an empty PostgreSQL database:
// the fleet (devices, history, groups, tokens, audit log), the generated
// admin and enrollment tokens, and the private CA with the server
// certificate, so replicas started on the database serve the same fleet
// with the same identity.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./doorbell-data", "the bbolt data dir to copy (stop the server first)")
	to := fs.String("to", "", "the PostgreSQL database to copy into: a postgres:// URL (required; the database must hold no fleet)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: doorbell migrate --data-dir DIR --to postgres://...\n\nCopies a bbolt data dir into an empty PostgreSQL database (see docs/SCALING.md).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		return errors.New("migrate: --to must be a postgres:// URL")
	}
	path := filepath.Join(*dataDir, "doorbell.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	src, err := bolt.Open(path)
	if err != nil {
		return fmt.Errorf("migrate: %w (is the server still running? stop it first)", err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()
	// The fleet streams across in parts: memory holds one part, whatever
	// the fleet's size. The copy is still one transaction.
	var copied migrateCounts
	var readErr error
	err = dst.LoadParts(ctx, func(yield func(store.Dump) error) error {
		copied, readErr = migrateCounts{}, nil // a retried transaction starts over
		var writeErr error
		err := src.DumpParts(ctx, migratePartSize, func(part store.Dump) error {
			copied.add(part)
			writeErr = yield(part)
			return writeErr
		})
		if err != nil && writeErr == nil {
			readErr = err
		}
		return err
	})
	if readErr != nil {
		return fmt.Errorf("migrate: reading %s: %w", path, readErr)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "copied %d devices, %d groups, %d operator tokens, %d enrollment tokens, %d audit entries, %d inventories\n",
		copied.devices, copied.groups, copied.operators, copied.enrollments, copied.audit, copied.inventories)

	for _, t := range []struct{ file, name string }{{"admin-token", "admin"}, {"enroll-token", "enroll"}} {
		b, err := os.ReadFile(filepath.Join(*dataDir, t.file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			if err := dst.SetSharedValue(ctx, postgres.TokenKey(t.name), []byte(tok)); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintf(stdout, "copied the generated %s token\n", t.name)
		}
	}
	files := dst.PKIFiles()
	n := 0
	for _, name := range []string{pki.CAFile, pki.CAKeyFile, pki.ServerFile, pki.ServerKeyFile} {
		b, err := os.ReadFile(filepath.Join(*dataDir, "tls", name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if err := files.Write(name, b, 0o600); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		n++
	}
	if n > 0 {
		fmt.Fprintf(stdout, "copied the private CA and server certificate (%d files from %s)\n", n, filepath.Join(*dataDir, "tls"))
	}
	return nil
}
