-- What the reports (`leadloop report …`) count per lead, kept on the lead as it happens, so a
-- report is one pass over `leads` grouped by channel, form or owner, however many messages,
-- hand-offs and verdicts the leads have. Triggers keep the columns true whichever code path
-- writes a reply, a hand-off or a verdict; the statements at the end fill them for the history
-- recorded before this migration. Times are Unix milliseconds (UTC).

-- The first reply from the lead (an inbound message of kind `reply` naming it).
ALTER TABLE leads ADD COLUMN replied_at BIGINT;
-- The first hand-off to the lead's owner that was sent (a `handoff` in state `queued`).
ALTER TABLE leads ADD COLUMN handed_off_at BIGINT;
-- The newest quality verdict (qualified | unqualified | customer; `not_now`, `nurture` and
-- `owner` judge nothing and leave these alone), its reason and time, and the time of the first.
ALTER TABLE leads ADD COLUMN verdict TEXT;
ALTER TABLE leads ADD COLUMN verdict_reason TEXT;
ALTER TABLE leads ADD COLUMN verdict_at BIGINT;
ALTER TABLE leads ADD COLUMN first_verdict_at BIGINT;

CREATE FUNCTION leads_report_reply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads SET replied_at = NEW.recorded_at
    WHERE email = NEW.lead_email AND (replied_at IS NULL OR replied_at > NEW.recorded_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_report_reply AFTER INSERT ON inbound_messages
FOR EACH ROW WHEN (NEW.kind = 'reply' AND NEW.lead_email IS NOT NULL)
EXECUTE FUNCTION leads_report_reply();

-- A batch records its messages before the leads they create: a lead created by its own reply
-- finds the reply here.
CREATE FUNCTION leads_report_new_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Most new leads have no reply yet: then the row is not written twice.
    IF EXISTS (SELECT 1 FROM inbound_messages m WHERE m.lead_email = NEW.email AND m.kind = 'reply') THEN
        UPDATE leads SET replied_at = (
            SELECT MIN(m.recorded_at) FROM inbound_messages m WHERE m.lead_email = NEW.email AND m.kind = 'reply'
        ) WHERE id = NEW.id AND replied_at IS NULL;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_report_new_lead AFTER INSERT ON leads
FOR EACH ROW EXECUTE FUNCTION leads_report_new_lead();

CREATE FUNCTION leads_report_handoff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads SET handed_off_at = NEW.updated_at
    WHERE id = NEW.lead_id AND (handed_off_at IS NULL OR handed_off_at > NEW.updated_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_report_handoff_insert AFTER INSERT ON handoffs
FOR EACH ROW WHEN (NEW.kind = 'handoff' AND NEW.state = 'queued')
EXECUTE FUNCTION leads_report_handoff();
CREATE TRIGGER leads_report_handoff_update AFTER UPDATE OF state ON handoffs
FOR EACH ROW WHEN (NEW.kind = 'handoff' AND NEW.state = 'queued' AND OLD.state <> 'queued')
EXECUTE FUNCTION leads_report_handoff();

-- A verdict as new as the newest one wins (verdicts at the same millisecond: the one recorded
-- last, as `leads show` orders them).
CREATE FUNCTION leads_report_verdict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads SET
        verdict = CASE WHEN verdict_at IS NULL OR NEW.at >= verdict_at THEN NEW.verdict ELSE verdict END,
        verdict_reason = CASE WHEN verdict_at IS NULL OR NEW.at >= verdict_at THEN NEW.reason ELSE verdict_reason END,
        verdict_at = CASE WHEN verdict_at IS NULL OR NEW.at >= verdict_at THEN NEW.at ELSE verdict_at END,
        first_verdict_at = CASE WHEN first_verdict_at IS NULL OR NEW.at < first_verdict_at THEN NEW.at ELSE first_verdict_at END
    WHERE id = NEW.lead_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_report_verdict AFTER INSERT ON verdicts
FOR EACH ROW WHEN (NEW.verdict IN ('qualified', 'unqualified', 'customer'))
EXECUTE FUNCTION leads_report_verdict();

UPDATE leads SET replied_at = (
    SELECT MIN(m.recorded_at) FROM inbound_messages m WHERE m.lead_email = leads.email AND m.kind = 'reply'
);
UPDATE leads SET handed_off_at = (
    SELECT MIN(h.updated_at) FROM handoffs h WHERE h.lead_id = leads.id AND h.kind = 'handoff' AND h.state = 'queued'
);
UPDATE leads SET
    verdict = (SELECT v.verdict FROM verdicts v WHERE v.lead_id = leads.id AND v.verdict IN ('qualified', 'unqualified', 'customer') ORDER BY v.at DESC, v.id DESC LIMIT 1),
    verdict_reason = (SELECT v.reason FROM verdicts v WHERE v.lead_id = leads.id AND v.verdict IN ('qualified', 'unqualified', 'customer') ORDER BY v.at DESC, v.id DESC LIMIT 1),
    verdict_at = (SELECT MAX(v.at) FROM verdicts v WHERE v.lead_id = leads.id AND v.verdict IN ('qualified', 'unqualified', 'customer')),
    first_verdict_at = (SELECT MIN(v.at) FROM verdicts v WHERE v.lead_id = leads.id AND v.verdict IN ('qualified', 'unqualified', 'customer'));

-- The channels report reads only these indexes, by channel and creation time: one range per
-- channel and period of each. The first holds the reply and hand-off times, so counting all,
-- the replied and the handed off of a channel and period is one read of one range; the partial
-- one holds only the judged leads, for their verdicts, reasons and days to the first verdict.
CREATE INDEX leads_report_channel ON leads (channel, created_at, replied_at, handed_off_at);
-- It answers every question the one on `channel` alone did: one index less to keep.
DROP INDEX leads_channel;
CREATE INDEX leads_report_judged ON leads (channel, verdict, created_at, first_verdict_at, verdict_reason) WHERE verdict IS NOT NULL;
