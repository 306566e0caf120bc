-- The owner's spoken consent statement: its speaker embedding must match the voice being cloned.
ALTER TABLE consents ADD COLUMN statement_embedding vector(256);
