-- A new voice that sounds like another tenant's is held until an operator clears it.
ALTER TABLE voices ADD COLUMN IF NOT EXISTS review_cleared_at timestamptz;
