-- Blocks an operator placed on a tenant or a voice (`voxflow block`): every stage refuses their requests
-- until the block is lifted. Lifted blocks stay as history; a subject has at most one block in force.
CREATE TABLE blocks (
    block_id      bigserial PRIMARY KEY,
    subject_kind  text NOT NULL CHECK (subject_kind IN ('tenant', 'voice')),
    subject_id    text NOT NULL,
    reason        text NOT NULL,
    blocked_by    text NOT NULL,
    blocked_at    timestamptz NOT NULL DEFAULT now(),
    lifted_at     timestamptz,
    lifted_by     text
);
CREATE UNIQUE INDEX blocks_in_force ON blocks (subject_kind, subject_id) WHERE lifted_at IS NULL;

-- The per-voice synthesis rate window counts a voice's recent requests.
CREATE INDEX syntheses_voice_time ON syntheses (voice_id, requested_at);
