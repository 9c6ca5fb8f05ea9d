-- Every change to "ApiKey", by whatever writes it (a server, the keys CLI, an operator's SQL),
-- sends a notice on the channel "lss_api_key_changes" with the key's prefix ("*" after a
-- TRUNCATE) once its transaction commits. Servers keep the keys they have read while they hear
-- these notices, so that a revoked key is refused at once without a query per request.

CREATE OR REPLACE FUNCTION "lss_api_key_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('lss_api_key_changes', '*');
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('lss_api_key_changes', OLD."prefix");
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('lss_api_key_changes', NEW."prefix");
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS "ApiKey_changed" ON "ApiKey";
CREATE TRIGGER "ApiKey_changed" AFTER INSERT OR UPDATE OR DELETE ON "ApiKey"
  FOR EACH ROW EXECUTE FUNCTION "lss_api_key_changed"();

DROP TRIGGER IF EXISTS "ApiKey_truncated" ON "ApiKey";
CREATE TRIGGER "ApiKey_truncated" AFTER TRUNCATE ON "ApiKey"
  FOR EACH STATEMENT EXECUTE FUNCTION "lss_api_key_changed"();
