-- Doorbell's schema, version 1. Records are kept as the JSON the Go types
-- encode to (the json type keeps the text as written, so canonical setting
-- values stay byte-equal), with the columns that are searched, locked or
-- counted alongside. Text keys use the "C" collation: byte order, as the
-- API pages ids.

CREATE TABLE devices (
	id          text COLLATE "C" PRIMARY KEY,
	secret_hash bytea NOT NULL UNIQUE,
	-- Derived compliance state (store.Derive), kept by every write, so
	-- ?state= is an index range rather than a scan.
	state       text NOT NULL,
	-- How many transitions were ever recorded: the next one is hist_n+1 and
	-- the one it pushes out of the window is hist_n+1-HistoryLimit.
	hist_n      bigint NOT NULL DEFAULT 0,
	-- When the device was last seen (MarkSeen), kept apart from doc so a
	-- batch of sightings rewrites no records.
	last_seen_at timestamptz,
	doc         json NOT NULL
);
CREATE INDEX devices_state ON devices (state, id);

CREATE TABLE history (
	device_id text COLLATE "C" NOT NULL,
	n         bigint NOT NULL,
	doc       json NOT NULL,
	PRIMARY KEY (device_id, n)
);

CREATE TABLE groups (
	id   text COLLATE "C" PRIMARY KEY,
	name text COLLATE "C" NOT NULL,
	doc  json NOT NULL,
	CONSTRAINT groups_name_key UNIQUE (name)
);

CREATE TABLE group_members (
	group_id  text COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	PRIMARY KEY (group_id, device_id)
);
CREATE INDEX group_members_device ON group_members (device_id);

-- The fleet's state and drift counters, spread over shards by a hash of
-- the device id, so concurrent writes rarely wait on the same row; Summary
-- adds the shards up. kind 's' counts devices per state, 'd' devices
-- failing a setting.
CREATE TABLE fleet_counters (
	shard smallint NOT NULL,
	kind  "char" NOT NULL,
	key   text COLLATE "C" NOT NULL,
	n     bigint NOT NULL,
	PRIMARY KEY (shard, kind, key)
);

CREATE TABLE operator_tokens (
	name text COLLATE "C" PRIMARY KEY,
	hash bytea NOT NULL UNIQUE,
	doc  json NOT NULL
);

CREATE TABLE enrollment_tokens (
	id   text COLLATE "C" PRIMARY KEY,
	hash bytea NOT NULL UNIQUE,
	doc  json NOT NULL
);

-- Audit ids come from one counter row, taken in the transaction that
-- appends: ids are gap-free and in commit order, so paging by id never
-- skips an entry that commits late. Audited changes are operator actions,
-- rare enough to take turns.
CREATE TABLE audit_seq (
	one bool PRIMARY KEY DEFAULT true CHECK (one),
	n   bigint NOT NULL
);
INSERT INTO audit_seq VALUES (true, 0);

CREATE TABLE audit (
	id  bigint PRIMARY KEY,
	doc json NOT NULL
);
