-- Producers sign their events: the public keys an operator registered for each tenant.
CREATE TABLE tenant_keys (
    key_id      text PRIMARY KEY,
    tenant_id   text NOT NULL,
    public_key  bytea NOT NULL UNIQUE,
    added_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX tenant_keys_tenant ON tenant_keys (tenant_id);

-- Signed checkpoints of the audit chain's head: a log cut back or rewritten behind one fails verification.
CREATE TABLE audit_checkpoints (
    sequence     bigint PRIMARY KEY,
    head_hash    text NOT NULL,
    signed_at    timestamptz NOT NULL,
    key_id       text NOT NULL,
    signature    bytea NOT NULL
);
