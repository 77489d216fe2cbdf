-- Lead scores with their reasons: `[[score]]` rules, recomputed whenever a lead changes.
-- The reasons are a JSON list of {"reason", "points"}, the rules that added up to `score`.
ALTER TABLE leads ADD COLUMN score_reasons TEXT NOT NULL DEFAULT '[]';
