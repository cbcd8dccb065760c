-- Release plans: what the admin declares a year's releases will be, before any is made. Only
-- planned releases are made (no ad-hoc filters, PRIVACY.md), the budget a plan will spend is
-- known in advance, and retention knows when a period's last scheduled release is done.

CREATE TABLE release_plans (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    budget_year     integer NOT NULL CHECK (budget_year BETWEEN 2000 AND 2200),
    program_id      uuid,                 -- NULL: the whole organisation
    survey_id       uuid NOT NULL,
    granularity     text NOT NULL CHECK (granularity IN ('month', 'quarter', 'year')),
    questions       text[] NOT NULL CHECK (cardinality(questions) BETWEEN 1 AND 200),
    breakdown       text,                 -- one single-choice question, or NULL
    epsilon         numeric NOT NULL CHECK (epsilon > 0 AND epsilon <= 10),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- One plan line per table: the releases it makes are keyed the same way.
    UNIQUE NULLS NOT DISTINCT
        (organisation_id, budget_year, program_id, survey_id, granularity, breakdown),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, survey_id) REFERENCES surveys (organisation_id, id)
);

-- A yearly budget of zero is a valid choice (nothing is released that year); the default epsilon
-- of a plan line no longer has to fit in it.
ALTER TABLE organisations
    DROP CONSTRAINT organisations_epsilon_per_year_check,
    DROP CONSTRAINT organisations_check,
    ADD CONSTRAINT organisations_epsilon_per_year_check
        CHECK (epsilon_per_year >= 0 AND epsilon_per_year <= 10),
    ADD CONSTRAINT organisations_epsilon_per_release_check
        CHECK (epsilon_per_release > 0 AND epsilon_per_release <= 10);
