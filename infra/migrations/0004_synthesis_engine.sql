-- Which engine speaks a synthesis (requests before this column were all spoken by espeak-ng + WORLD).
ALTER TABLE syntheses ADD COLUMN engine text NOT NULL DEFAULT 'espeak';
