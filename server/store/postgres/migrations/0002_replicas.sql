-- Replicas: their heartbeats, which one holds each device's MQTT session,
-- and state every replica shares (generated tokens, the private CA and
-- server certificate).

CREATE TABLE replicas (
	id         text COLLATE "C" PRIMARY KEY,
	started_at timestamptz NOT NULL DEFAULT now(),
	heartbeat  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE presence (
	device_id text COLLATE "C" PRIMARY KEY,
	replica   text COLLATE "C" NOT NULL,
	since     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX presence_replica ON presence (replica);

CREATE TABLE shared_state (
	name       text COLLATE "C" PRIMARY KEY,
	value      bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
