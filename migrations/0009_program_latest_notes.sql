-- The latest "you said, we did" notes of each program, kept on the program row by triggers,
-- so that survivor pages read them with the program instead of querying notes each time.
-- A JSON array, newest first, of objects mapping a language to the note's text.

ALTER TABLE programs ADD COLUMN latest_notes jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(latest_notes) = 'array');

CREATE FUNCTION refresh_latest_notes(program uuid) RETURNS void
LANGUAGE sql AS $$
    UPDATE programs
       SET latest_notes = coalesce((
               SELECT jsonb_agg(texts ORDER BY created_at DESC)
                 FROM (
                     SELECT n.created_at,
                            (SELECT jsonb_object_agg(t.language, t.body)
                               FROM note_texts t WHERE t.note_id = n.id) AS texts
                       FROM notes n
                      WHERE n.program_id = program AND n.withdrawn_at IS NULL
                      ORDER BY n.created_at DESC
                      LIMIT 3
                 ) latest
                WHERE texts IS NOT NULL
           ), '[]')
     WHERE id = program;
$$;

CREATE FUNCTION notes_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'notes' THEN
        PERFORM refresh_latest_notes(CASE WHEN TG_OP = 'DELETE' THEN OLD.program_id
                                          ELSE NEW.program_id END);
    ELSE
        PERFORM refresh_latest_notes(n.program_id)
           FROM notes n
          WHERE n.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.note_id ELSE NEW.note_id END;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER notes_refresh_latest AFTER INSERT OR UPDATE OR DELETE ON notes
    FOR EACH ROW EXECUTE FUNCTION notes_changed();
CREATE TRIGGER note_texts_refresh_latest AFTER INSERT OR UPDATE OR DELETE ON note_texts
    FOR EACH ROW EXECUTE FUNCTION notes_changed();
