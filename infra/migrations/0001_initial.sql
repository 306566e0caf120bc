-- voxflow initial schema: voices, samples, consents, profiles, jobs, syntheses, audit, inbox.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE voices (
    voice_id      text PRIMARY KEY,
    tenant_id     text NOT NULL,
    protected     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE samples (
    sample_id       uuid PRIMARY KEY,
    voice_id        text NOT NULL REFERENCES voices ON DELETE CASCADE,
    tenant_id       text NOT NULL,
    object_key      text NOT NULL,
    normalised_key  text,
    status          text NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reasons         jsonb NOT NULL DEFAULT '[]',
    suggestions     jsonb NOT NULL DEFAULT '[]',
    speech_s        double precision,
    quality         jsonb NOT NULL DEFAULT '{}',
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX samples_voice ON samples (voice_id);

CREATE TABLE consents (
    consent_id        uuid PRIMARY KEY,
    voice_id          text NOT NULL REFERENCES voices ON DELETE CASCADE,
    tenant_id         text NOT NULL,
    owner_id          text NOT NULL,
    owner_public_key  bytea NOT NULL,
    status            text NOT NULL CHECK (status IN ('verified', 'rejected', 'revoked')),
    reasons           jsonb NOT NULL DEFAULT '[]',
    purposes          text[] NOT NULL,
    languages         text[] NOT NULL,
    issued_at         timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    max_uses          integer,
    uses              integer NOT NULL DEFAULT 0,
    document          jsonb NOT NULL,
    signature         bytea NOT NULL,
    decided_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);
CREATE INDEX consents_voice ON consents (voice_id, status);

CREATE TABLE voice_profiles (
    voice_id       text NOT NULL REFERENCES voices ON DELETE CASCADE,
    version        integer NOT NULL,
    adaptation_id  uuid NOT NULL UNIQUE,
    sample_ids     uuid[] NOT NULL,
    embedding      vector(256) NOT NULL,
    profile        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (voice_id, version)
);

CREATE TABLE adaptation_jobs (
    adaptation_id  uuid PRIMARY KEY,
    voice_id       text NOT NULL REFERENCES voices ON DELETE CASCADE,
    tenant_id      text NOT NULL,
    status         text NOT NULL CHECK (status IN ('waiting', 'completed', 'failed')),
    reason         text,
    request        jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX adaptation_jobs_waiting ON adaptation_jobs (voice_id) WHERE status = 'waiting';

CREATE TABLE syntheses (
    synthesis_id        uuid PRIMARY KEY,
    voice_id            text NOT NULL REFERENCES voices ON DELETE CASCADE,
    tenant_id           text NOT NULL,
    consent_id          uuid,
    profile_version     integer,
    text                text NOT NULL,
    language            text NOT NULL,
    purpose             text NOT NULL,
    controls            jsonb NOT NULL,
    status              text NOT NULL CHECK (status IN ('accepted', 'produced', 'completed', 'failed')),
    reason              text,
    raw_key             text,
    object_key          text,
    watermark_payload   text UNIQUE,
    duration_s          double precision,
    rtf                 double precision,
    latency_s           double precision,
    speaker_similarity  double precision,
    requested_at        timestamptz NOT NULL,
    completed_at        timestamptz
);
CREATE INDEX syntheses_tenant_time ON syntheses (tenant_id, requested_at);

CREATE TABLE anomalies (
    event_id     uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    voice_id     text NOT NULL,
    kind         text NOT NULL,
    severity     text NOT NULL,
    action       text NOT NULL,
    detail       text NOT NULL,
    detected_at  timestamptz NOT NULL
);

CREATE TABLE audit_log (
    sequence       bigint PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    previous_hash  text NOT NULL,
    record_hash    text NOT NULL,
    record         jsonb NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

-- Inbox: which consumer already handled which event (idempotent handlers on at-least-once delivery).
CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
