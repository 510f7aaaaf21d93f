-- Policy revisions of a group or device layer (store.RevisionStore): the
-- last store.RevisionLimit of each, numbered from 1.
CREATE TABLE revisions (
	kind     text NOT NULL,
	layer_id text COLLATE "C" NOT NULL,
	n        bigint NOT NULL,
	doc      json NOT NULL,
	PRIMARY KEY (kind, layer_id, n)
);

-- Escalation steps fired (store.EscalationStore): the nonCompliantSince
-- each step of each device last fired for.
CREATE TABLE escalations (
	device_id text COLLATE "C" NOT NULL,
	step      text COLLATE "C" NOT NULL,
	since     text NOT NULL,
	PRIMARY KEY (device_id, step)
);
