-- Which daemon reads a mailbox. Several daemons may share one database; one at a time reads
-- each mailbox, under a lease it renews while it reads. A lease that runs out (its holder died
-- or lost the database) is taken over by another daemon.
CREATE TABLE mailbox_leases (
    mailbox TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    taken_at BIGINT NOT NULL
);
