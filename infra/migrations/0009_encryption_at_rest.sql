-- Envelope encryption at rest: one data key per voice (per tenant for detection checks), wrapped by a
-- master key kept outside the database. Destroying a key (erasure) keeps its row as a tombstone.
CREATE TABLE data_keys (
    key_id         uuid PRIMARY KEY,
    scope          text NOT NULL UNIQUE,
    master_key_id  text,
    wrapped_key    bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    rewrapped_at   timestamptz,
    destroyed_at   timestamptz,
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- A profile (the voice's style vector and settings) is sealed under its voice's data key. The speaker
-- embedding stays readable: protected-voice and cross-tenant search need it, and it cannot be spoken.
-- Profiles written before this migration cannot be sealed in SQL (the master key never reaches the
-- database): they are dropped, and those voices are adapted again.
DELETE FROM voice_profiles;
ALTER TABLE voice_profiles DROP COLUMN profile;
ALTER TABLE voice_profiles ADD COLUMN sealed_profile bytea NOT NULL;

-- Erasure: the voice row stays as the record that the id may never be used again.
ALTER TABLE voices ADD COLUMN erased_at timestamptz;
CREATE TABLE erasures (
    erasure_id    uuid PRIMARY KEY,
    voice_id      text NOT NULL,
    tenant_id     text NOT NULL,
    requested_by  text NOT NULL,
    reason        text,
    report        jsonb NOT NULL,
    completed_at  timestamptz NOT NULL DEFAULT now()
);

-- A synthesis request's profile snapshot, sealed the same way.
ALTER TABLE syntheses DROP COLUMN profile;
ALTER TABLE syntheses ADD COLUMN sealed_profile bytea;
