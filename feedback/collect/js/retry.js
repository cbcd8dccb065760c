// The "not sent yet" page: its form holds the answers (sealed, or as typed without JavaScript);
// with this script it sends them again by itself after a pause, and the page after it does the
// same while the service is still away.
function start() {
  const form = document.querySelector("form[data-retry]");
  if (!form) return;
  const note = form.querySelector("[data-retry-note]");
  if (note) note.hidden = false;
  const seconds = Number(form.dataset.retry) || 20;
  window.setTimeout(() => {
    form.querySelector("button[type=submit]").disabled = true;
    form.submit();
  }, seconds * 1000);
}

start();
