package proto

import (
	"encoding/json"
	"time"
)

// Revision is one stored state of a group's policy or of a device's own
// settings: GET /groups/{id}/revisions/{n}, GET /devices/{id}/revisions/{n}.
// Every change is one, numbered from 1; numbers only grow, so a rollback to
// revision n is a new revision with n's content.
type Revision struct {
	N  int64     `json:"n"`
	At time.Time `json:"at"`
	// Actor is the operator token's name that made the change, Action the
	// audit action ("group.policy", "policy.update", "group.rollback"...).
	Actor  string `json:"actor,omitempty"`
	Action string `json:"action,omitempty"`
	// Policy is the layer's settings after the change, Modes its
	// per-setting modes, Mode a group's own mode.
	Policy SettingValues   `json:"policy"`
	Modes  map[string]Mode `json:"modes,omitempty"`
	Mode   Mode            `json:"mode,omitempty"`
	// Deadline is the layer's guided deadline.
	Deadline string `json:"deadline,omitempty"`
	// Changes is what differs from the previous revision.
	Changes []RevisionChange `json:"changes"`
}

// RevisionChange is one setting that a revision changed; From or To is
// null when the setting was not managed on that side. Setting is "mode"
// for a group's mode and "modes.<setting>" for a setting's own mode.
type RevisionChange struct {
	Setting string          `json:"setting"`
	From    json.RawMessage `json:"from"`
	To      json.RawMessage `json:"to"`
}

// RevisionList is the answer to GET /groups/{id}/revisions and GET
// /devices/{id}/revisions: the kept revisions (the newest 100), newest
// first.
type RevisionList struct {
	Revisions []Revision `json:"revisions"`
}

// Rollback is the body of POST /groups/{id}/rollback and POST
// /devices/{id}/rollback: the revision whose content becomes current again.
type Rollback struct {
	Revision int64 `json:"revision"`
}
