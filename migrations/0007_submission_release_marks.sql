-- Whether a submission has been counted in a release. The aggregator sets it when it makes the
-- release; the withdraw page reads it (the survivor side never reads releases themselves) to
-- say honestly that counted answers can no longer be taken out.
ALTER TABLE submissions
    ADD COLUMN included_in_release boolean NOT NULL DEFAULT false;
