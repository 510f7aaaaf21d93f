package agent

import (
	"encoding/json"
	"net/http"

	"github.com/doorbell-mdm/doorbell/proto"
)

// enableCommands adds the command routes (capability 4) to the fake
// server; without them it answers 404 there, like an older server.
func (s *fakeServer) enableCommands() {
	s.mux.HandleFunc("GET /devices/{id}/commands", s.device("commands", s.handleCommands))
	s.mux.HandleFunc("POST /devices/{id}/commands/{cid}/result", s.device("result", s.handleResult))
}

// queueCommand queues a PENDING command for the device.
func (s *fakeServer) queueCommand(deviceID string, c proto.Command) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.DeviceID, c.State = deviceID, proto.CommandPending
	d := s.devices[deviceID]
	d.cmds = append(d.cmds, c)
}

func (s *fakeServer) handleCommands(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int {
	s.mu.Lock()
	list := proto.CommandList{Commands: []proto.Command{}}
	for i := range d.cmds {
		if d.cmds[i].State.Executable() && len(list.Commands) < proto.MaxDeliveredCommands {
			d.cmds[i].State = proto.CommandDelivered
			list.Commands = append(list.Commands, d.cmds[i])
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
	return 200
}

func (s *fakeServer) handleResult(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int {
	var res proto.CommandResult
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil || res.Validate() != nil {
		writeError(w, 400, "invalid_body", "bad result")
		return 400
	}
	cid := r.PathValue("cid")
	s.mu.Lock()
	defer s.mu.Unlock()
	status := 404
	for i := range d.cmds {
		if d.cmds[i].CommandID != cid {
			continue
		}
		if !d.cmds[i].State.Executable() {
			status = 409
			break
		}
		d.cmds[i].State, d.cmds[i].Result = res.State, &res
		status = 200
	}
	d.results = append(d.results, fakeResult{CommandID: cid, Result: res, Status: status})
	if status != 200 {
		writeError(w, status, "refused", "refused")
		return status
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte("{}"))
	return 200
}

// commandResults returns the results the device posted, in order.
func (s *fakeServer) commandResults(id string) []fakeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fakeResult(nil), s.devices[id].results...)
}

// setCommandState sets a queued command's state behind the agent's back.
func (s *fakeServer) setCommandState(id, cid string, st proto.CommandState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.devices[id].cmds {
		if s.devices[id].cmds[i].CommandID == cid {
			s.devices[id].cmds[i].State = st
		}
	}
}
