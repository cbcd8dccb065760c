-- Networks (issue 14): a coalition registers member organisations by their public signing
-- keys, imports their signed publications after checking them, and publishes a summary built
-- from them alone, signed with its own key. A network is an organisation row of its own (for
-- its signing key and its publications); members are known by name and key, not by rows.
CREATE TABLE networks (
    organisation_id uuid PRIMARY KEY REFERENCES organisations (id),
    -- What every member release must say on its card to be pooled.
    privacy_unit    text NOT NULL CHECK (privacy_unit IN ('invitation', 'submission')),
    threshold       integer NOT NULL CHECK (threshold >= 1),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE network_members (
    network_id uuid NOT NULL REFERENCES networks (organisation_id),
    member     text NOT NULL CHECK (member ~ '^[a-z0-9][a-z0-9-]{0,62}$'),  -- as its manifests
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    public_key text NOT NULL,             -- minisign's base64 line
    consents   boolean NOT NULL DEFAULT false,  -- to be shown by name beside the network
    joined_at  timestamptz NOT NULL DEFAULT now(),
    left_at    timestamptz,               -- absent from summaries made after it
    PRIMARY KEY (network_id, member)
);

CREATE TABLE network_imports (
    network_id      uuid NOT NULL,
    member          text NOT NULL,
    series          text NOT NULL,
    sequence        integer NOT NULL,
    period          text NOT NULL,
    manifest_sha256 text NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    archive         bytea NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (network_id, member, series, sequence),
    FOREIGN KEY (network_id, member) REFERENCES network_members (network_id, member)
);
CREATE TRIGGER network_imports_immutable BEFORE UPDATE OR DELETE ON network_imports
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- The key holder runs networks from the CLI, as the worker; the staff app reads them.
GRANT SELECT, INSERT ON networks, network_imports TO feedback_worker;
GRANT SELECT, INSERT, UPDATE (left_at, consents) ON network_members TO feedback_worker;
GRANT SELECT ON networks, network_members, network_imports TO feedback_staff;
