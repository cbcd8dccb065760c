-- One PostgreSQL role per trust surface (DESIGN.md section 5). Each process takes its role on
-- every connection it opens (SET ROLE), or connects as a login role that is a member of that
-- role only:
--
--   feedback_survivor  the survivor app: stores submissions, spends invitations, reads public
--                      keys, surveys and the notes survivors see; keeps SMS conversations.
--                      Never wrapped private keys, releases, plans, users or the audit log.
--   feedback_staff     the staff app: releases, plans and the ledger (read), notes, users and
--                      sessions, the audit log, invitation batches. Never a ciphertext, an
--                      SMS conversation or a wrapped private key.
--   feedback_worker    the worker and the key ceremony: opens and counts submissions, makes
--                      releases and spends the budget, runs the scheduled jobs.
--
-- Roles belong to the whole server, so they are made only where missing; the user running the
-- migrations (their owner) is made a member of each, so that one login can take any of them.
-- Every later migration that adds a table grants it here too: tests/test_roles.py holds the
-- whole matrix and fails on a table it does not know.

DO $$
DECLARE
    role_name text;
    -- PostgreSQL 16 separates membership from the right to SET ROLE (and a role's creator
    -- gets only the right to administer it): ask for the right this process needs.
    modern boolean := current_setting('server_version_num')::int >= 160000;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['feedback_survivor', 'feedback_staff', 'feedback_worker']
    LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        EXCEPTION WHEN duplicate_object THEN
            NULL;  -- made by another database on this server
        END;
        IF NOT pg_has_role(current_user, role_name, CASE WHEN modern THEN 'SET' ELSE 'MEMBER' END)
        THEN
            BEGIN
                EXECUTE format(
                    'GRANT %I TO %I' || CASE WHEN modern THEN ' WITH SET TRUE' ELSE '' END,
                    role_name, current_user);
            EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
                RAISE EXCEPTION 'the role % exists, but % may not take it', role_name, current_user
                    USING HINT = format('As a superuser, run: GRANT %I TO %I', role_name,
                                        current_user);
            END;
        END IF;
    END LOOP;
END;
$$;

GRANT USAGE ON SCHEMA public TO feedback_survivor, feedback_staff, feedback_worker;
-- Every process checks, when it starts, that the schema is up to date.
GRANT SELECT ON schema_migrations TO feedback_survivor, feedback_staff, feedback_worker;

-- Survivor app ------------------------------------------------------------------------------
GRANT SELECT (id, comments_enabled, sms_name, sms_help_text, sms_number)
    ON organisations TO feedback_survivor;
GRANT SELECT (id, organisation_id, languages, latest_notes, keep_partial_sms)
    ON programs TO feedback_survivor;
GRANT SELECT ON surveys TO feedback_survivor;
GRANT SELECT (id, organisation_id, public_key, retired_at) ON collection_keys TO feedback_survivor;
GRANT SELECT (id, organisation_id, program_id, survey_id, kind, medium, expires_at, revoked_at)
    ON invitation_batches TO feedback_survivor;
GRANT SELECT, DELETE ON invitations TO feedback_survivor;
-- Insert only: a survivor withdraws through withdraw_submission(receipt), never by reading or
-- deleting rows (a taken-over survivor app cannot wipe what is stored).
GRANT INSERT ON submissions TO feedback_survivor;
GRANT EXECUTE ON FUNCTION withdraw_submission(bytea) TO feedback_survivor;
GRANT SELECT, INSERT, UPDATE, DELETE ON sms_sessions TO feedback_survivor;
GRANT SELECT, INSERT ON secret_fingerprints TO feedback_survivor, feedback_staff;

-- Staff app ---------------------------------------------------------------------------------
GRANT SELECT ON organisations, programs, surveys TO feedback_staff;
GRANT SELECT, INSERT, UPDATE ON users TO feedback_staff;
GRANT SELECT, INSERT, DELETE ON user_programs TO feedback_staff;
GRANT SELECT, INSERT, UPDATE, DELETE ON staff_sessions, password_links, api_tokens
    TO feedback_staff;
GRANT SELECT, INSERT ON audit_log TO feedback_staff;
GRANT SELECT ON releases, release_plans, privacy_ledger, funders, publications TO feedback_staff;
GRANT SELECT, INSERT, UPDATE ON notes TO feedback_staff;
GRANT SELECT, INSERT ON note_texts TO feedback_staff;
GRANT SELECT, INSERT ON invitation_batches TO feedback_staff;
GRANT UPDATE (revoked_at) ON invitation_batches TO feedback_staff;
-- Tokens are issued through issue_invitations (with a new batch, once) and never read back:
-- how many of a batch are left would say how many were used.
GRANT EXECUTE ON FUNCTION issue_invitations(uuid, bytea[]) TO feedback_staff;
GRANT SELECT (id, organisation_id, public_key, created_at, retired_at)
    ON collection_keys, signing_keys TO feedback_staff;

-- Notes reach survivors through programs.latest_notes, which the notes' triggers keep: the
-- staff role may not change programs itself, so the function runs as its owner.
ALTER FUNCTION refresh_latest_notes(uuid) SECURITY DEFINER SET search_path = public, pg_temp;

-- Worker and key ceremony -------------------------------------------------------------------
GRANT SELECT ON organisations, programs, surveys TO feedback_worker;
-- The budget settings, and row locks on the organisation while a release spends its budget.
GRANT UPDATE (epsilon_per_year, epsilon_per_release, release_threshold, retention_grace_days)
    ON organisations TO feedback_worker;
GRANT UPDATE (privacy_group) ON programs TO feedback_worker;
GRANT SELECT, INSERT, UPDATE ON collection_keys, signing_keys TO feedback_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON submissions TO feedback_worker;
GRANT SELECT ON invitation_batches TO feedback_worker;
GRANT SELECT, DELETE ON invitations, sms_sessions TO feedback_worker;
GRANT SELECT, INSERT ON releases, privacy_ledger TO feedback_worker;
GRANT SELECT, INSERT, DELETE ON release_plans TO feedback_worker;
GRANT SELECT, INSERT, UPDATE ON job_runs TO feedback_worker;
GRANT SELECT, INSERT ON audit_log TO feedback_worker;
