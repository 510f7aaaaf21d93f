-- Whether a replica has live /events streams open: the others send device
-- events over the bus only while one has (the bus tells them at once; this
-- column is for a replica that starts, or missed the message).

ALTER TABLE replicas ADD COLUMN streams boolean NOT NULL DEFAULT false;
