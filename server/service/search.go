package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// SearchFacts are the inventory facts a fleet search (GET /devices?q=)
// looks in, besides the device id and the model the device enrolled with.
var SearchFacts = []string{proto.FactHostname, proto.FactSerial, proto.FactIP, proto.FactModel}

// MaxSearchText bounds the text of a fleet search, in bytes.
const MaxSearchText = 128

// SearchDevices pages through the devices text finds, in id order after
// after: a device whose id starts with text, or whose model, or whose
// inventory hostname, serial, IP address or hardware model contains it
// (case-insensitively). match, when not nil, must also hold (?state=,
// ?seen=). more says whether a further device matches.
//
// Each source (the device list and one inventory index per fact) is read
// a page of at most limit ids at a time and the sources are merged in id
// order, so memory stays bounded by the page size whatever the text finds.
func (s *Service) SearchDevices(ctx context.Context, text, after string, limit int, match func(store.Device) bool) ([]store.Device, bool, error) {
	if len(text) > MaxSearchText || !utf8.ValidString(text) {
		return nil, false, Errorf("invalid_query", "q must be text of at most %d bytes", MaxSearchText)
	}
	low := strings.ToLower(strings.TrimSpace(text))
	if low == "" {
		return nil, false, Errorf("invalid_query", "q needs some text")
	}
	contains := func(v string) bool { return strings.Contains(strings.ToLower(v), low) }
	srcs := []*searchSource{{devices: func(after string) ([]store.Device, bool, error) {
		return s.st.Devices(ctx, after, limit, func(d store.Device) bool {
			return strings.HasPrefix(strings.ToLower(d.ID), low) || contains(d.Model)
		})
	}}}
	for _, f := range SearchFacts {
		q := store.InventoryQuery{Facts: []store.FactCond{{Fact: f, Match: contains}}}
		srcs = append(srcs, &searchSource{ids: func(after string) ([]string, bool, error) {
			return s.st.FindDevices(ctx, q, after, limit)
		}})
	}
	for _, src := range srcs {
		src.after, src.more = after, true
	}

	var out []store.Device
	for {
		// The smallest id any source has next.
		next := ""
		var dev *store.Device
		for _, src := range srcs {
			id, d, err := src.head()
			if err != nil {
				return nil, false, fmt.Errorf("searching devices: %w", err)
			}
			if id != "" && (next == "" || id < next) {
				next, dev = id, d
			} else if id != "" && id == next && dev == nil {
				dev = d
			}
		}
		if next == "" {
			return out, false, nil
		}
		for _, src := range srcs {
			src.pop(next)
		}
		if dev == nil {
			d, err := s.st.Device(ctx, next)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted since the index was read
			}
			if err != nil {
				return nil, false, fmt.Errorf("searching devices: %w", err)
			}
			dev = &d
		}
		if match != nil && !match(*dev) {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, *dev)
	}
}

// searchSource is one of a search's sources, read a page at a time: either
// devices (the device list with a match) or ids (an inventory index).
type searchSource struct {
	devices func(after string) ([]store.Device, bool, error)
	ids     func(after string) ([]string, bool, error)

	after   string // the last id read
	more    bool   // whether the source may have ids after it
	bufDevs []store.Device
	bufIDs  []string
}

// head returns the source's next id (and its device, when the source holds
// devices), or "" when it has no more.
func (s *searchSource) head() (string, *store.Device, error) {
	for len(s.bufDevs) == 0 && len(s.bufIDs) == 0 && s.more {
		var err error
		if s.devices != nil {
			s.bufDevs, s.more, err = s.devices(s.after)
			if n := len(s.bufDevs); n > 0 {
				s.after = s.bufDevs[n-1].ID
			}
		} else {
			s.bufIDs, s.more, err = s.ids(s.after)
			if n := len(s.bufIDs); n > 0 {
				s.after = s.bufIDs[n-1]
			}
		}
		if err != nil {
			return "", nil, err
		}
		if len(s.bufDevs) == 0 && len(s.bufIDs) == 0 {
			s.more = false
		}
	}
	if len(s.bufDevs) > 0 {
		return s.bufDevs[0].ID, &s.bufDevs[0], nil
	}
	if len(s.bufIDs) > 0 {
		return s.bufIDs[0], nil, nil
	}
	return "", nil, nil
}

// pop drops id from the front of the source, where head put it.
func (s *searchSource) pop(id string) {
	if len(s.bufDevs) > 0 && s.bufDevs[0].ID == id {
		s.bufDevs = s.bufDevs[1:]
	}
	if len(s.bufIDs) > 0 && s.bufIDs[0] == id {
		s.bufIDs = s.bufIDs[1:]
	}
}
