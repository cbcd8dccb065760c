-- No role the apps use reads a number that moves with survivors' actions (PRIVACY.md,
-- Metadata): not the statistics views and functions, not row estimates or sizes, not the
-- transaction-id and WAL clocks, which count every write transaction, each answer included.
--
-- This migration does what the schema's owner may do. What only a superuser may do (change
-- the privileges of PostgreSQL's own catalog objects) is in feedback/sql/withhold_statistics.sql,
-- which `feedback migrate` runs after the migrations when its login is a superuser, and which
-- otherwise a superuser runs (docs/operations.md); `feedback serve` refuses to start the staff
-- app while its role can still read them.
--
-- Nothing here names a column of a table: columns are enumerated as the migration runs.

-- What to withhold, enumerated on the running server (PostgreSQL 15 to 18 name some of them
-- differently): feedback.exposure reads it to say what a role can still read, and the
-- superuser's file revokes it.
--   kind 'view'      any access to the view
--   kind 'function'  EXECUTE
--   kind 'column'    SELECT on the column (a system column's is the table's own SELECT)
--   kind 'database'  TEMPORARY on this database (a temporary table's catalog rows carry the
--                    current transaction id)
--   kind 'schema'    CREATE on schema public (the same, for a table of one's own)
CREATE FUNCTION withheld_statistics()
    RETURNS TABLE (kind text, object oid, column_name name, name text)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    -- The statistics views (pg_stat_*, pg_statio_*, pg_stats*, those of extensions such as
    -- pg_stat_statements) and the views of locks, prepared transactions and replication slots,
    -- which carry transaction ids.
    SELECT 'view', c.oid, NULL::name, c.oid::regclass::text
      FROM pg_class c
     WHERE c.relkind IN ('v', 'm')
       AND c.relnamespace <> 'public'::regnamespace
       AND (c.relname LIKE 'pg\_stat%'
            OR (c.relnamespace = 'pg_catalog'::regnamespace
                AND c.relname IN ('pg_locks', 'pg_prepared_xacts', 'pg_replication_slots')))
    UNION ALL
    SELECT 'function', p.oid, NULL, p.oid::regprocedure::text
      FROM pg_proc p
     WHERE (p.proname LIKE 'pg\_stat\_%' AND p.pronamespace <> 'public'::regnamespace)
        OR (p.pronamespace = 'pg_catalog'::regnamespace
            AND (p.proname LIKE ANY (ARRAY[
                    -- the transaction-id clock
                    'txid\_current%', 'pg\_current\_xact\_id%', 'pg\_xact\_commit\_timestamp%',
                    -- the WAL clock, and what a checkpoint records (next xid, next OID, LSNs)
                    'pg\_current\_wal\_%', 'pg\_last\_wal\_%', 'pg\_control\_%'])
                 OR p.proname IN (
                    'pg_current_snapshot', 'txid_status', 'pg_xact_status',
                    'pg_last_committed_xact', 'pg_get_multixact_members',
                    'pg_last_xact_replay_timestamp',
                    'pg_available_wal_summaries', 'pg_get_wal_summarizer_state',
                    'pg_wal_summary_contents',
                    -- what pg_locks, pg_prepared_xacts and pg_replication_slots read
                    'pg_lock_status', 'pg_blocking_pids', 'pg_safe_snapshot_blocking_pids',
                    'pg_isolation_test_session_is_blocked', 'pg_prepared_xact',
                    'pg_get_replication_slots',
                    -- a snapshot's name carries its backend's count of transactions (the
                    -- worker alone is given it back: it shares one snapshot between processes)
                    'pg_export_snapshot',
                    -- sizes and files, which grow with every answer and move with a rewrite
                    'pg_relation_size', 'pg_total_relation_size', 'pg_table_size',
                    'pg_indexes_size', 'pg_database_size', 'pg_tablespace_size',
                    'pg_relation_filenode', 'pg_relation_filepath', 'pg_filenode_relation',
                    -- the OID counter, which a stored answer long enough to be TOASTed
                    -- advances: large objects take their OID from it
                    'lo_creat', 'lo_create', 'lo_from_bytea', 'pg_column_toast_chunk_id')))
        OR p.oid IN (to_regprocedure('pg_catalog.age(xid)'),
                     to_regprocedure('pg_catalog.mxid_age(xid)'))
    UNION ALL
    -- Row estimates, pages, files and the freeze horizon of every relation and database.
    SELECT 'column', a.attrelid, a.attname, format('%s.%I', a.attrelid::regclass, a.attname)
      FROM pg_attribute a
     WHERE (a.attrelid = 'pg_catalog.pg_class'::regclass
            AND a.attname IN ('reltuples', 'relpages', 'relallvisible', 'relallfrozen',
                              'relfrozenxid', 'relminmxid', 'relfilenode'))
        OR (a.attrelid = 'pg_catalog.pg_database'::regclass
            AND a.attname IN ('datfrozenxid', 'datminmxid'))
    UNION ALL
    -- The transaction id that wrote each row (and the one that locked it), of the catalogs and
    -- of the application's tables: a role that writes a row and reads its xmin reads the clock.
    SELECT 'column', c.oid, 'xmin', format('%s.xmin', c.oid::regclass)
      FROM pg_class c
     WHERE c.relkind IN ('r', 'p')
       AND c.relnamespace IN ('pg_catalog'::regnamespace, 'public'::regnamespace)
    UNION ALL
    SELECT 'database', d.oid, NULL, format('TEMPORARY on database %I', d.datname)
      FROM pg_database d
     WHERE d.datname = current_database()
    UNION ALL
    SELECT 'schema', 'public'::regnamespace, NULL, 'CREATE on schema public'
$$;

-- The worker slices submissions by their physical blocks to count them in parallel
-- (feedback/aggregate/unseal.py): it is told how many there are, and nothing of another table.
CREATE FUNCTION submission_blocks() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT pg_catalog.pg_relation_size('public.submissions'::regclass)
           / pg_catalog.current_setting('block_size')::bigint
$$;
REVOKE ALL ON FUNCTION submission_blocks() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION submission_blocks() TO feedback_worker;

-- A role's SELECT on a whole table also reads its system columns: xmin (the transaction that
-- wrote the row, so the current one for a row the role has just written), xmax and ctid. Each
-- role is given instead the table's columns, one by one, which `SELECT *` still reads. The
-- worker keeps the whole of submissions: it reads ctid to slice the table, and it counts the
-- answers anyway. Later migrations grant columns too (tests/test_roles.py checks it), and a
-- migration that adds a column grants it to the roles that should read it.
DO $$
DECLARE
    grant_row record;
    columns text;
BEGIN
    FOR grant_row IN
        SELECT c.oid::regclass AS rel, a.grantee::regrole AS role
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND a.privilege_type = 'SELECT'
           AND a.grantee IN (SELECT oid FROM pg_roles
                              WHERE rolname IN ('feedback_survivor', 'feedback_staff',
                                                'feedback_worker'))
           AND NOT (c.oid = 'public.submissions'::regclass
                    AND a.grantee = 'feedback_worker'::regrole)
    LOOP
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
          FROM pg_attribute
         WHERE attrelid = grant_row.rel AND attnum > 0 AND NOT attisdropped;
        -- Revoking SELECT on the table also revokes the role's SELECT on its columns.
        EXECUTE format('REVOKE SELECT ON %s FROM %s', grant_row.rel, grant_row.role);
        EXECUTE format('GRANT SELECT (%s) ON %s TO %s', columns, grant_row.rel, grant_row.role);
    END LOOP;
END;
$$;
