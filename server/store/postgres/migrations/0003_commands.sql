-- Remote commands (store.CommandStore). A command outlives its device
-- (deleting the device cancels its unfinished ones), so device_id is not a
-- foreign key. seq orders a device's commands (newest last); open marks
-- the unfinished ones, which the partial indexes keep small.
CREATE TABLE commands (
	id         text COLLATE "C" PRIMARY KEY,
	device_id  text COLLATE "C" NOT NULL,
	seq        bigint GENERATED ALWAYS AS IDENTITY,
	state      text NOT NULL,
	open       bool NOT NULL,
	expires_at timestamptz NOT NULL,
	idem_key   text COLLATE "C",
	doc        json NOT NULL
);
CREATE INDEX commands_device ON commands (device_id, seq);
CREATE INDEX commands_open ON commands (device_id, seq) WHERE open;
CREATE INDEX commands_expiry ON commands (expires_at) WHERE open;
CREATE UNIQUE INDEX commands_key ON commands (device_id, idem_key) WHERE idem_key IS NOT NULL;
