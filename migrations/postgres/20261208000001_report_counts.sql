-- The channel report counts a channel's leads per period in `leads_report_channel`, and
-- its replied and handed-off leads in the two partial indexes below, which hold only those
-- leads. Counting index entries is cheaper than reading two columns of every lead, and a
-- reply or a hand-off now adds one small entry instead of rewriting the lead's entry in
-- the channel index.
DROP INDEX leads_report_channel;
CREATE INDEX leads_report_channel ON leads (channel, created_at);
CREATE INDEX leads_report_replied ON leads (channel, created_at, replied_at) WHERE replied_at IS NOT NULL;
CREATE INDEX leads_report_handed_off ON leads (channel, created_at, handed_off_at) WHERE handed_off_at IS NOT NULL;
