-- Up to which UID the mail of a mailbox was tidied (flagged or moved, `[imap] after`) once
-- recorded. A daemon stopped between recording a batch and tidying it leaves
-- `tidied_uid < last_uid`, and the next pass tidies that range even when no new mail came.
-- The mail recorded before this column existed counts as tidied.
ALTER TABLE mailbox_state ADD COLUMN tidied_uid BIGINT NOT NULL DEFAULT 0;
UPDATE mailbox_state SET tidied_uid = last_uid;
