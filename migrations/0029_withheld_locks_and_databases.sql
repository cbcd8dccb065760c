-- What the review of issue 21 found still in view of the apps' roles, now withheld too
-- (feedback/sql/withhold_statistics.sql does the revoking, as a superuser):
--   pg_logical_emit_message(), which writes a WAL record and returns its position;
--   the advisory lock functions (kind 'lock'), with which a role probes the locks a
--     survivor's transaction or the mix holds: revoked from everyone, given back to the
--     survivor app's and the worker's roles and the schema's owner, who take them;
--   CONNECT for everyone on the server's other databases (kind 'connect'): from one whose
--     statistics are not withheld (the postgres database, template1), a login reads the
--     cluster's clocks and this database's size and counters.
--   kind 'lock'     EXECUTE, by a role other than the survivor app's and the worker's
--   kind 'connect'  CONNECT on that database for PUBLIC

CREATE OR REPLACE FUNCTION withheld_statistics()
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
                    'lo_creat', 'lo_create', 'lo_from_bytea', 'pg_column_toast_chunk_id',
                    -- writes a WAL record and returns its position: the WAL clock again
                    'pg_logical_emit_message')))
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
    UNION ALL
    -- Advisory locks: a role that may take one may probe one a survivor's transaction or the
    -- mix holds, and time it. The survivor app (a number's SMS) and the worker (jobs, mixing,
    -- releases) take them; no other role the apps use may.
    SELECT 'lock', p.oid, NULL, p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'pg_catalog'::regnamespace
       AND p.proname LIKE ANY (ARRAY['pg\_advisory\_%', 'pg\_try\_advisory\_%'])
    UNION ALL
    -- Every other database of the server that anyone may connect to: withholding is per
    -- database, and from another, whose statistics are not withheld, the cluster's
    -- transaction-id and WAL clocks, and this database's size and counters, are in view.
    SELECT 'connect', d.oid, NULL, format('CONNECT on database %I for everyone', d.datname)
      FROM pg_database d
     WHERE d.datname <> current_database() AND d.datallowconn
$$;


-- A role that may update a row may lock it, and a lock it cannot get says another transaction
-- holds one: every stored answer holds a key-share lock on its program's row until it commits
-- (its foreign key), so a staff login that polled `SELECT ... FROM programs FOR UPDATE NOWAIT`
-- timed each answer. Staff rename a program through this function, which holds the row for
-- the rename only; the staff role may not update (so not lock) programs itself.
CREATE FUNCTION rename_program(organisation uuid, program text, new_name text) RETURNS uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    UPDATE programs SET name = new_name
     WHERE organisation_id = organisation AND slug = program
    RETURNING id
$$;
REVOKE ALL ON FUNCTION rename_program(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rename_program(uuid, text, text) TO feedback_staff;
REVOKE UPDATE ON programs FROM feedback_staff;
