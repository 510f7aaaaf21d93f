package store

import (
	"context"
	"errors"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Errors of the command store. Nothing is written when one is returned.
var (
	// ErrCommandConflict: the device already has an unfinished command of
	// an exclusive type (a second lock or wipe).
	ErrCommandConflict = errors.New("the device already has an unfinished command of this type")
	// ErrCommandState: the command's state does not allow the change (a
	// result for a final command, a cancel after delivery).
	ErrCommandState = errors.New("the command's state does not allow this")
)

// CommandChange is one committed change of a command: the command after it
// and its state before (empty for a new command).
type CommandChange struct {
	Command proto.Command
	From    proto.CommandState
}

// CommandStore holds remote commands and enforces their life cycle
// (proto.CommandState). Every method that changes commands records the
// audit entry of ctx (WithAudit), once, in the same transaction, and
// announces each change it committed to the backend's command hook (bolt:
// WithCommandHook), after the commit.
type CommandStore interface {
	// CreateCommands stores cmds (complete: id, device, type, times,
	// state PENDING) in one transaction, and returns, in order, the
	// command stored for each: the new one, or, when the device already
	// has a command with the same IdempotencyKey, that first command
	// (nothing is stored for it). It refuses the whole batch, storing
	// nothing: with ErrUnknownDevice (wrapped, naming the ids) when a
	// device does not exist, ErrExists when a command id is taken, and
	// ErrCommandConflict when a command of an Exclusive type meets an
	// unfinished one of the same type on its device. A command whose type
	// CancelsOthers cancels every other unfinished command of its device.
	CreateCommands(ctx context.Context, cmds []proto.Command) ([]proto.Command, error)
	// Command returns one command, or ErrNotFound.
	Command(ctx context.Context, id string) (proto.Command, error)
	// DeviceCommands returns up to limit commands of the device, newest
	// first, starting after the command whose id is after ("" for the
	// newest), keeping only state when it is not empty. more says whether
	// further matching commands exist. It returns ErrNotFound for an
	// unknown device or an unknown cursor.
	DeviceCommands(ctx context.Context, deviceID, after string, limit int, state proto.CommandState) (cmds []proto.Command, more bool, err error)
	// DeliverCommands returns, oldest first, up to limit of the device's
	// commands it may still execute at now (PENDING, DELIVERED and
	// NOT_NOW, not expired), marking each DELIVERED at now; unfinished
	// ones past their expiry become EXPIRED instead. It returns
	// ErrNotFound for an unknown device.
	DeliverCommands(ctx context.Context, deviceID string, now time.Time, limit int) ([]proto.Command, error)
	// HasOpenCommands reports whether the device has an unfinished command
	// (what DeliverCommands would hand it or expire): one read, asked at
	// every policy poll. An unknown device has none.
	HasOpenCommands(ctx context.Context, deviceID string) (bool, error)
	// SetCommandResult records the device's result (ACKNOWLEDGED, ERROR or
	// NOT_NOW) at now. It returns ErrNotFound when the command does not
	// exist or belongs to another device, and ErrCommandState when the
	// command is final or past its expiry at now.
	SetCommandResult(ctx context.Context, deviceID, commandID string, r proto.CommandResult, now time.Time) (proto.Command, error)
	// CancelCommand cancels a command the device has not fetched (PENDING,
	// or NOT_NOW: offered again later) at now. It returns ErrNotFound, or
	// ErrCommandState for a delivered or final command.
	CancelCommand(ctx context.Context, id string, now time.Time) (proto.Command, error)
	// ExpireCommands makes every unfinished command whose expiry is at or
	// before now EXPIRED, and returns how many it changed.
	ExpireCommands(ctx context.Context, now time.Time) (int, error)
}
