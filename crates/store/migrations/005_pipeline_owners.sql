-- Who registered a pipeline: changing its source takes them or an admin. NULL for
-- pipelines registered before owners existed (only admins may change their source).
ALTER TABLE pipelines ADD COLUMN owner TEXT;
