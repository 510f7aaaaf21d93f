-- Device inventories (store.InventoryStore). inventory_devices holds the
-- devices that sent one, with its times; inventory_sections each section's
-- JSON and metadata. The fact and package rows are a device's index
-- entries, rewritten with its sections in the same transaction; counts are
-- GROUP BYs over them. Deleting the device deletes them all.
CREATE TABLE inventory_devices (
	device_id    text COLLATE "C" PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	collected_at timestamptz,
	updated_at   timestamptz NOT NULL
);

CREATE TABLE inventory_sections (
	device_id   text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	section     text COLLATE "C" NOT NULL,
	hash        text NOT NULL,
	data        bytea NOT NULL,
	changed_at  timestamptz NOT NULL,
	received_at timestamptz NOT NULL,
	PRIMARY KEY (device_id, section)
);

CREATE TABLE inventory_facts (
	device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	fact      text COLLATE "C" NOT NULL,
	value     text COLLATE "C" NOT NULL,
	PRIMARY KEY (device_id, fact, value)
);
CREATE INDEX inventory_facts_value ON inventory_facts (fact, value, device_id);

CREATE TABLE inventory_packages (
	device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	name      text COLLATE "C" NOT NULL,
	format    text COLLATE "C" NOT NULL,
	version   text COLLATE "C" NOT NULL,
	PRIMARY KEY (device_id, name, format, version)
);
CREATE INDEX inventory_packages_version ON inventory_packages (name, version, device_id);
