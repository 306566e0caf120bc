-- Nearest-voice search (the protected-voice check of every adaptation) over every profile version: without an
-- index `ORDER BY embedding <=> $1 LIMIT k` reads and compares every stored embedding. HNSW on cosine distance
-- answers it from a few hundred index entries (approximate: pgvector's defaults, m = 16, ef_construction = 64).
CREATE INDEX IF NOT EXISTS voice_profiles_embedding_hnsw ON voice_profiles USING hnsw (embedding vector_cosine_ops);
