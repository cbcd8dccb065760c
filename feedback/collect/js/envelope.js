// The envelope, byte for byte as feedback/envelope.py makes it: canonical JSON (sorted keys, no
// spaces, UTF-8), padded with 0x80 then zeros to the smallest bucket that holds it.
export const FORMAT_VERSION = 1;
export const BUCKETS = [1024, 2048, 4096, 8192, 16384];

function sortedObject(value) {
  const out = {};
  for (const key of Object.keys(value).sort()) out[key] = value[key];
  return out;
}

/** answers: {questionId: number | string}; comment: string or null. */
export function envelopeJson({ survey, surveyVersion, language, answers, comment }) {
  const document = { answers: sortedObject(answers), lang: language, survey, survey_version: surveyVersion, v: FORMAT_VERSION };
  if (comment) document.comment = comment;
  return new TextEncoder().encode(JSON.stringify(sortedObject(document)));
}

export function pad(data) {
  for (const bucket of BUCKETS) {
    if (data.length + 1 <= bucket) {
      const out = new Uint8Array(bucket);
      out.set(data, 0);
      out[data.length] = 0x80;
      return out;
    }
  }
  throw new RangeError("the answers are too long to send");
}
