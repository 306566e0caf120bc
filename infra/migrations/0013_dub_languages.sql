-- The languages a dub's script speaks, which its consent had to cover: `voxflow verify` rechecks them from
-- an output file alone. Dubs recorded before this migration have none (their scope check covers purpose
-- and validity only).
ALTER TABLE dubs ADD COLUMN languages text[] NOT NULL DEFAULT '{}';
