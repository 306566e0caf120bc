-- Dubbing requests: one row per dub, so a redelivered request gives one result and the delivery endpoint
-- finds the output of the tenant that asked for it.
CREATE TABLE dubs (
    dub_id              uuid PRIMARY KEY,
    voice_id            text NOT NULL REFERENCES voices ON DELETE CASCADE,
    tenant_id           text NOT NULL,
    consent_id          uuid,
    status              text NOT NULL CHECK (status IN ('accepted', 'completed', 'failed')),
    reason              text,
    output_key          text,
    media_type          text,
    watermark_payload   text UNIQUE,
    duration_s          double precision,
    placements          jsonb,
    overflows           jsonb,
    latency_s           double precision,
    requested_at        timestamptz NOT NULL,
    completed_at        timestamptz
);
