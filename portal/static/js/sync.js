// The sync status area in the header (templates/sync/_status_area.html): it asks the local
// portal where sync stands (often while a sync runs, rarely otherwise), and "Sync now" starts
// a sync without leaving the page. Without JavaScript the button is a plain form.
document.addEventListener("DOMContentLoaded", () => {
  const area = document.querySelector("[data-sync-status]");
  if (!area) return;
  const BUSY_MS = 700;
  const QUIET_MS = 20000;
  const SHOWN_STATES = ["offline", "problem", "revoked"];
  const field = (name) => area.querySelector(`[data-sync-field="${name}"]`);
  let timer = null;
  let result = ""; // the outcome of a sync this page started, shown until the next one

  function setText(name, text) {
    const element = field(name);
    if (element && element.textContent !== text) element.textContent = text;
  }

  function show(status) {
    area.dataset.state = status.state;
    setText("headline", status.headline);
    setText("last_sync_text", status.last_sync_text);
    setText("pending_text", status.pending_text);
    setText("phase_text", status.running ? `${status.phase}… ${status.percent}%` : "");
    const bar = field("progress");
    if (bar) {
      bar.hidden = !status.running;
      bar.value = status.percent;
      bar.textContent = `${status.percent}%`;
    }
    if (result === "pending" && !status.running) result = status.message;
    const message = SHOWN_STATES.includes(status.state)
      ? status.message
      : result === "pending" ? "" : result;
    setText("message", message);
    const conflicts = field("conflicts");
    if (conflicts) {
      conflicts.hidden = !status.open_conflicts;
      setText("open_conflicts", String(status.open_conflicts));
    }
    area.querySelectorAll("[data-sync-when]").forEach((element) => {
      element.hidden = element.dataset.syncWhen !== status.state;
    });
    area.querySelectorAll("[data-sync-unless]").forEach((element) => {
      element.hidden = element.dataset.syncUnless === status.state;
    });
    const button = area.querySelector("[data-sync-now] button");
    if (button) button.disabled = status.running;
    return status.running;
  }

  async function poll() {
    window.clearTimeout(timer);
    let next = QUIET_MS;
    try {
      const response = await fetch(area.dataset.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.status === 404) return; // not enrolled (any more): nothing to follow
      if (response.ok && show(await response.json())) next = BUSY_MS;
    } catch (error) {
      // The local portal is stopping or busy: ask again later.
    }
    timer = window.setTimeout(poll, next);
  }

  const form = area.querySelector("form[data-sync-now]");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = form.querySelector('input[name="csrf_token"]').value;
      result = "pending";
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: new FormData(form),
          headers: { Accept: "application/json", "X-CSRFToken": token },
          credentials: "same-origin",
        });
        const answer = await response.json();
        if (!answer.started) result = answer.message;
        show(answer);
      } catch (error) {
        result = form.dataset.textNotStarted || "The sync could not be started; try again.";
      }
      timer = window.setTimeout(poll, BUSY_MS);
    });
  }

  timer = window.setTimeout(poll, area.dataset.state === "syncing" ? BUSY_MS : QUIET_MS);
});
