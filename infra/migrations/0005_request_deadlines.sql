-- Stalled requests are failed after a deadline: the failure event needs the request's journey and cause.
ALTER TABLE syntheses
    ADD COLUMN correlation_id uuid,
    ADD COLUMN request_event_id uuid;
CREATE INDEX syntheses_accepted_time ON syntheses (requested_at) WHERE status = 'accepted';
