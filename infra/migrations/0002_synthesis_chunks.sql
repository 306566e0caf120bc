-- Streamed synthesis: a request is spoken chunk by chunk; each chunk is watermarked and released on its own.
ALTER TABLE syntheses
    ADD COLUMN chunk_count integer,
    ADD COLUMN profile jsonb,
    ADD COLUMN word_error_rate double precision,
    ADD COLUMN dnsmos double precision;

CREATE TABLE synthesis_chunks (
    synthesis_id  uuid NOT NULL REFERENCES syntheses ON DELETE CASCADE,
    chunk_index   integer NOT NULL,
    raw_key       text,
    object_key    text,
    duration_s    double precision NOT NULL,
    compute_s     double precision NOT NULL,
    released_at   timestamptz,
    PRIMARY KEY (synthesis_id, chunk_index)
);
