-- Where a secret may be used: a JSON document {"environments": [...], "apps": [...],
-- "pipelines": [...]}; NULL for secrets stored before scopes existed (usable nowhere
-- until a deployer or an admin scopes them).
ALTER TABLE secrets ADD COLUMN scope TEXT;
