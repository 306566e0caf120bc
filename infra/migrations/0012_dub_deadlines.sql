-- Stalled dubs are failed after the request deadline, as syntheses are: the failure event needs the
-- request's journey and cause.
ALTER TABLE dubs
    ADD COLUMN correlation_id uuid,
    ADD COLUMN request_event_id uuid;
CREATE INDEX dubs_accepted_time ON dubs (requested_at) WHERE status = 'accepted';
