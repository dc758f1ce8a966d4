-- A client may cancel an execution that is not running on any worker right now (queued behind
-- others, or its worker died): the claim remembers it, so the submission never runs.
ALTER TABLE execution_claims DROP CONSTRAINT IF EXISTS execution_claims_state_check;
ALTER TABLE execution_claims
    ADD CONSTRAINT execution_claims_state_check
    CHECK (state IN ('running', 'finished', 'cancelled'));
ALTER TABLE execution_claims ADD COLUMN IF NOT EXISTS cancel_reason text;
