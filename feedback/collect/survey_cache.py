"""Survey definitions as the survivor side reads them: a version never changes (the database
refuses updates), so each is read and parsed once per process."""

from __future__ import annotations

import uuid

from feedback.collect import queries
from feedback.db import Connection
from feedback.surveys import Survey, from_json


class SurveyCache:
    def __init__(self) -> None:
        self._surveys: dict[uuid.UUID, Survey] = {}

    async def get(self, conn: Connection, survey_id: uuid.UUID) -> Survey:
        survey = self._surveys.get(survey_id)
        if survey is None:
            definition = await queries.select_survey_definition(conn, survey_id=survey_id)
            survey = self._surveys[survey_id] = from_json(definition)
        return survey
