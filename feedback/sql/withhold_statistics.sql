-- Withhold from the roles the apps use every statistic that moves with survivors' actions:
-- statistics views and functions, row estimates, sizes, and the transaction-id and WAL clocks
-- (PRIVACY.md, Metadata; the list is withheld_statistics(), made by migration 0027).
--
-- `feedback migrate` runs this file after the migrations, as its own login: a superuser does
-- all of it, the database's owner only what a database's owner may (temporary tables, and
-- CREATE on schema public). Only a superuser may change the privileges of PostgreSQL's own
-- catalog objects, so where the schema's owner is not one, a superuser runs it once after
-- `feedback migrate` (and again after a restore or a major upgrade):
--
--     psql "postgresql://SUPERUSER@HOST/DATABASE" -v ON_ERROR_STOP=1 -f withhold_statistics.sql
--
-- It is safe to run any number of times. What PUBLIC could read moves to pg_read_all_stats,
-- the role PostgreSQL made for monitoring: grant it to a monitoring login, never to an app's.
-- The schema's owner is made a member, so that its pg_dump (which reads pg_class whole) and
-- the worker's submission_blocks() keep working.
DO $withhold$
DECLARE
    superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
    database_owner oid := (SELECT datdba FROM pg_database WHERE datname = current_database());
    schema_owner oid := (SELECT relowner FROM pg_class
                          WHERE oid = to_regclass('public.schema_migrations'));
    item record;
    kept text;
BEGIN
    IF to_regprocedure('public.withheld_statistics()') IS NULL THEN
        RAISE EXCEPTION 'this database lacks withheld_statistics()'
            USING HINT = 'Run `feedback migrate` first.';
    END IF;

    -- Temporary tables and tables of one's own: their catalog rows carry the current xid.
    IF has_database_privilege('public', current_database(), 'TEMPORARY')
       AND (superuser OR pg_has_role(database_owner, 'MEMBER')) THEN
        EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    END IF;
    IF has_schema_privilege('public', 'public', 'CREATE')
       AND (superuser OR pg_has_role((SELECT nspowner FROM pg_namespace
                                       WHERE nspname = 'public'), 'MEMBER')) THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    END IF;
    IF NOT superuser THEN
        RAISE WARNING 'only a superuser can withhold PostgreSQL''s statistics views and '
            'functions, row estimates, sizes and clocks: % is not one', current_user;
        RETURN;
    END IF;

    FOR item IN SELECT * FROM public.withheld_statistics() WHERE kind = 'view' LOOP
        IF has_any_column_privilege('public', item.object, 'SELECT') THEN
            EXECUTE format('REVOKE SELECT ON TABLE %s FROM PUBLIC', item.object::regclass);
            EXECUTE format('GRANT SELECT ON TABLE %s TO pg_read_all_stats',
                           item.object::regclass);
        END IF;
    END LOOP;

    FOR item IN SELECT * FROM public.withheld_statistics() WHERE kind = 'function' LOOP
        IF has_function_privilege('public', item.object, 'EXECUTE') THEN
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC',
                           item.object::regprocedure);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats',
                           item.object::regprocedure);
        END IF;
    END LOOP;
    -- The worker shares one snapshot between the processes that count a large period.
    GRANT EXECUTE ON FUNCTION pg_catalog.pg_export_snapshot() TO feedback_worker;

    -- Advisory locks: only the roles that take them (a number's SMS, the worker's jobs, the
    -- schema's owner for migrations and survey versions) may; no one may probe them.
    FOR item IN SELECT * FROM public.withheld_statistics() WHERE kind = 'lock' LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', item.object::regprocedure);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO feedback_survivor, feedback_worker',
                       item.object::regprocedure);
        IF schema_owner IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', item.object::regprocedure,
                           schema_owner::regrole);
        END IF;
    END LOOP;

    -- The server's other databases: no one but their owners, superusers and those granted
    -- it may connect (run one installation per server; a monitoring login is granted CONNECT
    -- where it needs it).
    FOR item IN SELECT * FROM public.withheld_statistics() WHERE kind = 'connect' LOOP
        IF has_database_privilege('public', item.object, 'CONNECT') THEN
            EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC',
                           (SELECT datname FROM pg_database WHERE oid = item.object));
        END IF;
    END LOOP;

    -- The catalogs: each column to PUBLIC but the withheld ones, so that no system column
    -- (xmin) is readable; the whole table to pg_read_all_stats.
    FOR item IN
        SELECT DISTINCT w.object
          FROM public.withheld_statistics() w JOIN pg_class c ON c.oid = w.object
         WHERE w.kind = 'column' AND c.relnamespace = 'pg_catalog'::regnamespace
    LOOP
        IF has_table_privilege('public', item.object, 'SELECT') THEN
            SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO kept
              FROM pg_attribute a
             WHERE a.attrelid = item.object AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname NOT IN (SELECT w.column_name FROM public.withheld_statistics() w
                                      WHERE w.kind = 'column' AND w.object = item.object);
            -- Revoking SELECT on the table also revokes PUBLIC's SELECT on its columns.
            EXECUTE format('REVOKE SELECT ON TABLE %s FROM PUBLIC', item.object::regclass);
            EXECUTE format('GRANT SELECT (%s) ON TABLE %s TO PUBLIC', kept,
                           item.object::regclass);
            EXECUTE format('GRANT SELECT ON TABLE %s TO pg_read_all_stats',
                           item.object::regclass);
        END IF;
    END LOOP;
    FOR item IN
        SELECT w.object, w.column_name
          FROM public.withheld_statistics() w JOIN pg_class c ON c.oid = w.object
         WHERE w.kind = 'column' AND c.relnamespace = 'pg_catalog'::regnamespace
           AND w.column_name <> 'xmin'
           AND has_column_privilege('public', w.object, w.column_name::text, 'SELECT')
    LOOP
        EXECUTE format('REVOKE SELECT (%I) ON TABLE %s FROM PUBLIC', item.column_name,
                       item.object::regclass);
    END LOOP;

    IF schema_owner IS NOT NULL
       AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = schema_owner)
       AND NOT pg_has_role(schema_owner, 'pg_read_all_stats', 'MEMBER') THEN
        EXECUTE format('GRANT pg_read_all_stats TO %s', schema_owner::regrole);
    END IF;
END;
$withhold$;
