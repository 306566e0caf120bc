-- What an erasure removed that its tenant may still ask for, by id only (no personal data): a download of an
-- erased synthesis or dub is then answered "gone, erased", not "no such output".
CREATE TABLE erased_outputs (
    output_id  uuid PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('synthesis', 'dub')),
    tenant_id  text NOT NULL,
    erased_at  timestamptz NOT NULL DEFAULT now()
);
