-- Half-years (2026-H1, 2026-H2) join months, quarters and years as release periods: the plan
-- advisor proposes them where a quarter is too small to read and a year too long to wait.
ALTER TABLE releases DROP CONSTRAINT releases_granularity_check,
    ADD CONSTRAINT releases_granularity_check
        CHECK (granularity IN ('month', 'quarter', 'half', 'year'));
ALTER TABLE release_plans DROP CONSTRAINT release_plans_granularity_check,
    ADD CONSTRAINT release_plans_granularity_check
        CHECK (granularity IN ('month', 'quarter', 'half', 'year'));
ALTER TABLE publications DROP CONSTRAINT publications_granularity_check,
    ADD CONSTRAINT publications_granularity_check
        CHECK (granularity IN ('month', 'quarter', 'half', 'year'));
