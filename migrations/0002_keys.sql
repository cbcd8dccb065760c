-- Key material. Private halves are stored only wrapped: argon2id over the admin's passphrase
-- derives a key that seals the private key with SecretBox (24-byte nonce + 16-byte MAC + 32-byte
-- key = 72 bytes). A NULL wrapped key means the organisation keeps the private key off the server.

CREATE TABLE collection_keys (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id     uuid NOT NULL REFERENCES organisations (id),
    public_key          bytea NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    wrapped_private_key bytea CHECK (octet_length(wrapped_private_key) = 72),
    kdf_algorithm       text CHECK (kdf_algorithm = 'argon2id13'),
    kdf_salt            bytea CHECK (octet_length(kdf_salt) = 16),
    kdf_opslimit        bigint CHECK (kdf_opslimit > 0),
    kdf_memlimit        bigint CHECK (kdf_memlimit > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    retired_at          timestamptz CHECK (retired_at >= created_at),
    CHECK (num_nulls(wrapped_private_key, kdf_algorithm, kdf_salt, kdf_opslimit, kdf_memlimit)
           IN (0, 5)),
    UNIQUE (organisation_id, id)
);
-- New submissions are sealed to the one current key; retired keys stay to open old ones.
CREATE UNIQUE INDEX collection_keys_one_current ON collection_keys (organisation_id)
    WHERE retired_at IS NULL;

CREATE TABLE signing_keys (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id     uuid NOT NULL REFERENCES organisations (id),
    public_key          bytea NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    wrapped_private_key bytea CHECK (octet_length(wrapped_private_key) = 72),
    kdf_algorithm       text CHECK (kdf_algorithm = 'argon2id13'),
    kdf_salt            bytea CHECK (octet_length(kdf_salt) = 16),
    kdf_opslimit        bigint CHECK (kdf_opslimit > 0),
    kdf_memlimit        bigint CHECK (kdf_memlimit > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    retired_at          timestamptz CHECK (retired_at >= created_at),
    CHECK (num_nulls(wrapped_private_key, kdf_algorithm, kdf_salt, kdf_opslimit, kdf_memlimit)
           IN (0, 5)),
    UNIQUE (organisation_id, id)
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (organisation_id)
    WHERE retired_at IS NULL;

-- A key's identity never changes; only retiring it is allowed.
CREATE FUNCTION refuse_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.organisation_id IS DISTINCT FROM OLD.organisation_id
       OR NEW.public_key IS DISTINCT FROM OLD.public_key
       OR (OLD.retired_at IS NOT NULL AND NEW.retired_at IS DISTINCT FROM OLD.retired_at) THEN
        RAISE EXCEPTION '% rows may only be retired (or re-wrapped), not changed', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER collection_keys_identity BEFORE UPDATE ON collection_keys
    FOR EACH ROW EXECUTE FUNCTION refuse_key_change();
CREATE TRIGGER signing_keys_identity BEFORE UPDATE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION refuse_key_change();
