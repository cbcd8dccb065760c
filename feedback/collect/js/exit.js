// Quick exit (the GOV.UK "Exit this page" pattern): the button, or Shift pressed three times
// within two seconds, blanks the page and replaces this history entry with a neutral site.
function leave(link, event) {
  if (event) event.preventDefault();
  document.body.style.visibility = "hidden";
  document.title = "";
  window.location.replace(link.href);
}

function start() {
  const link = document.querySelector("[data-quick-exit]");
  if (!link) return;
  // The Shift tip only where it works: with this script, on a device with a keyboard and mouse.
  const tip = document.querySelector("[data-shift-tip]");
  if (tip && window.matchMedia && window.matchMedia("(hover: hover) and (pointer: fine)").matches) {
    tip.hidden = false;
  }
  link.addEventListener("click", (event) => leave(link, event));
  let presses = [];
  document.addEventListener("keyup", (event) => {
    if (event.key !== "Shift") return;
    const now = Date.now();
    presses = presses.filter((t) => now - t < 2000);
    presses.push(now);
    if (presses.length >= 3) leave(link);
  });
}

start();
