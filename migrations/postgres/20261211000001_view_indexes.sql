-- The web view's leads list reads a page in one of its orders from a position (the order's
-- key and the id), under the filters people use most: these indexes hold the leads in that
-- order per filter, so a page is read from its position on instead of after sorting or
-- skipping every lead before it. A channel alone uses `leads_report_channel`, no filter
-- `leads_created`, and the address order the address's own index.
--
-- A channel and a status together, the list's usual question, are answered from the index
-- alone: it also holds the columns the list shows, so a page reads a few index pages instead
-- of one table page per lead.
CREATE INDEX leads_view_channel_status ON leads (channel, status, created_at, id) INCLUDE (email, name, company, owner, score);
CREATE INDEX leads_view_status ON leads (status, created_at, id);
CREATE INDEX leads_view_owner ON leads (LOWER(owner), created_at, id);
CREATE INDEX leads_view_score ON leads (score, id);
