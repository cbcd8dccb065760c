-- One row per (job, period) that ran to completion. Together with a transaction-level advisory
-- lock this makes every scheduled job run at most once per period across any number of workers.

CREATE TABLE job_runs (
    job        text NOT NULL CHECK (job ~ '^[a-z][a-z0-9-]*$'),
    period     text NOT NULL,
    outcome    text,
    ran_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, period)
);
CREATE INDEX job_runs_by_time ON job_runs (ran_at);
