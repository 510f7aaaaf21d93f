-- When each device became NON_COMPLIANT (store.Device.NonCompliantSince),
-- kept beside doc by every write, so ?failingSince.lt= is a column
-- comparison (FailingLister) rather than a decode of every record. NULL
-- while the device is not failing.
ALTER TABLE devices ADD COLUMN non_compliant_since timestamptz;
UPDATE devices SET non_compliant_since = (doc->>'nonCompliantSince')::timestamptz
	WHERE doc->>'nonCompliantSince' IS NOT NULL;
CREATE INDEX devices_non_compliant_since ON devices (non_compliant_since, id)
	WHERE non_compliant_since IS NOT NULL;
