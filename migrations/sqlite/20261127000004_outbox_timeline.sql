-- A lead's timeline reads what was sent from the outbox rows themselves (a send changes the
-- row's state and writes nothing else), so the rows are found by lead, and the timeline
-- entries earlier versions wrote per send are dropped as duplicates of those rows.
CREATE INDEX outbox_lead ON outbox (lead_id);
DELETE FROM events WHERE kind = 'sent';
