// Seals the survey's answers in the browser, then posts only the sealed box. Without this script
// (or without crypto.getRandomValues) the same form posts normally and the server seals on arrival.
import { seal } from "./seal.js";
import { envelopeJson, pad } from "./envelope.js";

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function readAnswers(form) {
  const answers = {};
  for (const fieldset of form.querySelectorAll("fieldset[data-question]")) {
    const chosen = fieldset.querySelector("input:checked");
    if (!chosen || chosen.value === "") continue;
    const isScale = fieldset.dataset.type === "likert5" && /^[1-5]$/.test(chosen.value);
    answers[fieldset.dataset.question] = isScale ? Number(chosen.value) : chosen.value;
  }
  return answers;
}

function hiddenForm(action, fields) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  form.hidden = true;
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  return form;
}

function button(text, className) {
  const made = document.createElement("button");
  made.type = "button";
  made.className = className;
  made.textContent = text;
  return made;
}

// One part of the survey at a time, with Back and Next: no request between parts, and nothing
// kept anywhere but the form itself. Without this script every part shows, each headed with its
// place ("Part 1 of 3").
function paginate(form) {
  const parts = Array.from(form.querySelectorAll("section.part"));
  const send = form.querySelector("button[type=submit]");
  if (parts.length < 2 || !send) return () => true;
  const nav = document.createElement("div");
  nav.className = "part-nav";
  const back = button(form.dataset.back, "back");
  const next = button(form.dataset.next, "next");
  nav.append(back, next);
  send.before(nav);
  let current = 0;
  const show = (index, focus) => {
    current = index;
    parts.forEach((part, i) => {
      part.hidden = i !== index;
    });
    back.hidden = index === 0;
    next.hidden = index === parts.length - 1;
    send.hidden = index !== parts.length - 1;
    if (focus) {
      const heading = parts[index].querySelector("h2");
      heading.focus();
      heading.scrollIntoView({ block: "start" });
    }
  };
  back.addEventListener("click", () => show(current - 1, true));
  next.addEventListener("click", () => show(current + 1, true));
  show(0, false);
  // Enter in a part before the last moves on; it does not send.
  return () => {
    if (current === parts.length - 1) return true;
    show(current + 1, true);
    return false;
  };
}

function start() {
  const form = document.getElementById("survey");
  if (!form) return;
  const onLastPart = paginate(form);
  if (!window.crypto || !window.crypto.getRandomValues) {
    form.addEventListener("submit", (event) => {
      if (!onLastPart()) event.preventDefault();
    });
    return;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!onLastPart()) return;
    let outgoing;
    try {
      outgoing = sealedForm(form);
    } catch (error) {
      // A browser too old to seal: post the form itself; the server seals it on arrival.
      form.submit();
      return;
    }
    form.querySelector("button[type=submit]").disabled = true;
    document.body.appendChild(outgoing);
    outgoing.submit();
  });
}

function sealedForm(form) {
    const data = form.dataset;
    const comment = form.querySelector("textarea[name=comment]");
    const plaintext = pad(
      envelopeJson({
        survey: data.survey,
        surveyVersion: Number(data.surveyVersion),
        language: data.lang,
        answers: readAnswers(form),
        comment: comment && comment.value.trim() ? comment.value.trim().replace(/\r\n/g, "\n") : null,
      }),
    );
    const sealed = seal(plaintext, fromBase64(data.publicKey));
    plaintext.fill(0);
    return hiddenForm(form.action, { sealed: toBase64(sealed), key_id: data.keyId });
}

start();
