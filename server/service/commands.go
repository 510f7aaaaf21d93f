package service

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// CauseCommand is the cause of a change that is a command's (Change.Command
// is set; the device fields are empty).
const CauseCommand proto.EventCause = "command"

// Errors of the command rules.
var (
	ErrCommandNotFound = Errorf("command_not_found", "no such command")
)

// DefaultCommandExpiryInterval is how often RunCommandExpiry looks for
// commands past their expiry.
const DefaultCommandExpiryInterval = time.Second

// PublishCommands puts committed command changes on the change stream, one
// Change each with Command set. The store calls it after every commit
// that changed commands (bolt.WithCommandHook), whatever caused the change:
// a request, the expiry timer, a wipe or a device delete.
func (s *Service) PublishCommands(cs ...store.CommandChange) {
	for i := range cs {
		s.publishChange(Change{Command: &cs[i], Cause: CauseCommand})
	}
}

func newCommandID() string {
	b := make([]byte, 16)
	if _, err := crand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// newCommands checks req and returns one command per device, created now.
func (s *Service) newCommands(req proto.CommandRequest, deviceIDs []string, groupID, actor string) ([]proto.Command, error) {
	expiry, err := req.Validate()
	if err != nil {
		return nil, Errorf("invalid_body", "%s", err.Error())
	}
	now := s.cfg.Now().UTC()
	out := make([]proto.Command, len(deviceIDs))
	for i, id := range deviceIDs {
		out[i] = proto.Command{
			CommandID:      newCommandID(),
			DeviceID:       id,
			Type:           req.Type,
			Params:         req.Params,
			State:          proto.CommandPending,
			CreatedAt:      now,
			ExpiresAt:      now.Add(expiry),
			Timestamps:     map[proto.CommandState]time.Time{proto.CommandPending: now},
			GroupID:        groupID,
			IdempotencyKey: req.IdempotencyKey,
			CreatedBy:      actor,
		}
	}
	return out, nil
}

func commandError(err error) error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrCommandConflict):
		return Errorf("command_conflict", "%s", err.Error())
	case errors.Is(err, store.ErrCommandState):
		return Errorf("command_state", "%s", err.Error())
	case errors.Is(err, store.ErrUnknownDevice):
		return Errorf("unknown_devices", "%s", err.Error())
	case errors.Is(err, store.ErrNotFound):
		return ErrCommandNotFound
	}
	return fmt.Errorf("commands: %w", err)
}

// SendCommand queues a command for device d (as loaded) and rings it. The
// same idempotency key returns the first command, without a ring. ctx
// carries the audit entry.
func (s *Service) SendCommand(ctx context.Context, deviceID string, req proto.CommandRequest, actor string) (proto.Command, error) {
	d, err := s.st.Device(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return proto.Command{}, ErrDeviceNotFound
	}
	if err != nil {
		return proto.Command{}, fmt.Errorf("loading device: %w", err)
	}
	cmds, err := s.newCommands(req, []string{deviceID}, "", actor)
	if err != nil {
		return proto.Command{}, err
	}
	out, err := s.st.CreateCommands(ctx, cmds)
	if errors.Is(err, store.ErrUnknownDevice) {
		return proto.Command{}, ErrDeviceNotFound // deleted meanwhile
	}
	if err := commandError(err); err != nil {
		return proto.Command{}, err
	}
	if out[0].CommandID == cmds[0].CommandID {
		s.cfg.Bell.Ring(bridge.Ring{DeviceID: d.ID, FCMToken: d.FCMToken, Command: true})
	}
	return out[0], nil
}

// SendGroupCommand queues one command per member of the group, in one
// transaction, and rings each member.
func (s *Service) SendGroupCommand(ctx context.Context, groupID string, req proto.CommandRequest, actor string) ([]proto.Command, error) {
	g, err := s.st.Group(ctx, groupID)
	if err != nil {
		return nil, groupError(err)
	}
	cmds, err := s.newCommands(req, g.Members, g.ID, actor)
	if err != nil {
		return nil, err
	}
	if len(cmds) == 0 {
		return []proto.Command{}, nil
	}
	out, err := s.st.CreateCommands(ctx, cmds)
	if err := commandError(err); err != nil {
		return nil, err
	}
	rings := make([]bridge.Ring, 0, len(out))
	for i, c := range out {
		if c.CommandID != cmds[i].CommandID {
			continue // the idempotency key's first command
		}
		d, err := s.st.Device(ctx, c.DeviceID)
		if err != nil {
			continue // deleted since: its command is cancelled
		}
		rings = append(rings, bridge.Ring{DeviceID: d.ID, FCMToken: d.FCMToken, Command: true})
	}
	s.cfg.Bell.Ring(rings...)
	return out, nil
}

// Command returns one command.
func (s *Service) Command(ctx context.Context, id string) (proto.Command, error) {
	c, err := s.st.Command(ctx, id)
	return c, commandError(err)
}

// DeviceCommands returns one page of a device's commands, newest first.
func (s *Service) DeviceCommands(ctx context.Context, deviceID, after string, limit int, state proto.CommandState) (proto.CommandList, error) {
	cmds, more, err := s.st.DeviceCommands(ctx, deviceID, after, limit, state)
	if errors.Is(err, store.ErrNotFound) {
		if after != "" {
			if _, derr := s.st.Device(ctx, deviceID); derr == nil {
				return proto.CommandList{}, Errorf("invalid_query", "after %q is not a command of this device", after)
			}
		}
		return proto.CommandList{}, ErrDeviceNotFound
	}
	if err != nil {
		return proto.CommandList{}, fmt.Errorf("listing commands: %w", err)
	}
	list := proto.CommandList{Commands: make([]proto.Command, len(cmds))}
	for i, c := range cmds {
		list.Commands[i] = c.Redacted()
	}
	if more && len(cmds) > 0 {
		list.NextAfter = cmds[len(cmds)-1].CommandID
	}
	return list, nil
}

// CancelCommand cancels a command the device has not fetched.
func (s *Service) CancelCommand(ctx context.Context, id string) (proto.Command, error) {
	c, err := s.st.CancelCommand(ctx, id, s.cfg.Now())
	return c, commandError(err)
}

// DeliverCommands hands device d what it may still run, oldest first, and
// marks it DELIVERED.
func (s *Service) DeliverCommands(ctx context.Context, d store.Device) ([]proto.Command, error) {
	cmds, err := s.st.DeliverCommands(ctx, d.ID, s.cfg.Now(), proto.MaxDeliveredCommands)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrDeviceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("delivering commands: %w", err)
	}
	return cmds, nil
}

// HasOpenCommands reports whether device id has an unfinished command to
// fetch (proto.CommandsHeader).
func (s *Service) HasOpenCommands(ctx context.Context, id string) (bool, error) {
	open, err := s.st.HasOpenCommands(ctx, id)
	if err != nil {
		return false, fmt.Errorf("reading open commands: %w", err)
	}
	return open, nil
}

// CommandResult records device d's result for one of its commands. A
// command of another device is not found; a final or expired one is
// command_state.
func (s *Service) CommandResult(ctx context.Context, d store.Device, commandID string, r proto.CommandResult) (proto.Command, error) {
	if err := r.Validate(); err != nil {
		return proto.Command{}, Errorf("invalid_body", "%s", err.Error())
	}
	c, err := s.st.SetCommandResult(ctx, d.ID, commandID, r, s.cfg.Now())
	return c, commandError(err)
}

// ExpireCommands makes every command past its expiry EXPIRED now.
func (s *Service) ExpireCommands(ctx context.Context) (int, error) {
	return s.st.ExpireCommands(ctx, s.cfg.Now())
}

// RunCommandExpiry expires commands every interval (0 means
// DefaultCommandExpiryInterval) until ctx is done.
func (s *Service) RunCommandExpiry(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = DefaultCommandExpiryInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		actx := store.WithAudit(ctx, proto.AuditEntry{At: s.cfg.Now().UTC(), Actor: "server", Action: "command.expire", Target: "commands"})
		if n, err := s.ExpireCommands(actx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.logger.Error("expiring commands", "err", err)
		} else if n > 0 {
			s.logger.Info("commands expired", "commands", n)
		}
	}
}
