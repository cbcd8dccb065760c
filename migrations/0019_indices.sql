-- Releases of the two indices (docs/privacy.md). A plan line, and the releases it makes, are
-- either of questions (noisy counts per answer) or of the indices (per group, a noisy count
-- of respondents and a noisy sum per index). An indices line states how many respondents it
-- expects per period: the split of its epsilon is chosen for that (nothing is read from data).
ALTER TABLE release_plans
    ADD COLUMN kind text NOT NULL DEFAULT 'questions' CHECK (kind IN ('questions', 'indices')),
    ADD COLUMN expected_n integer CHECK (expected_n BETWEEN 1 AND 1000000),
    DROP CONSTRAINT release_plans_questions_check,
    ADD CONSTRAINT release_plans_questions_check CHECK (
        CASE kind WHEN 'questions' THEN cardinality(questions) BETWEEN 1 AND 200
                  ELSE cardinality(questions) = 0 AND expected_n IS NOT NULL END),
    DROP CONSTRAINT release_plans_organisation_id_budget_year_program_id_survey_key,
    ADD CONSTRAINT release_plans_one_line_per_table UNIQUE NULLS NOT DISTINCT
        (organisation_id, budget_year, program_id, survey_id, granularity, breakdown, kind);

ALTER TABLE releases
    ADD COLUMN kind text NOT NULL DEFAULT 'questions' CHECK (kind IN ('questions', 'indices')),
    DROP CONSTRAINT releases_organisation_id_program_id_survey_id_granularity_p_key,
    ADD CONSTRAINT releases_one_per_table UNIQUE NULLS NOT DISTINCT
        (organisation_id, program_id, survey_id, granularity, period_start, breakdown, kind);
