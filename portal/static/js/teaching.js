// Gradebook keyboard moves and the transcript's print button (no inline script: CSP).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });

  // Finalise grades: the confirmation is built from the server's answer at the moment the
  // button is pressed (marks typed or cleared since the page loaded count), and the form sends
  // the fingerprint of the missing marks that was confirmed: the server refuses to finalise if
  // the marks missing by then are not those. The warnings box on the page is refreshed too.
  const finaliseForm = document.getElementById("finalise-form");
  const warningsBox = document.getElementById("finalise-warnings");
  const askServer = async () => {
    const response = await fetch(finaliseForm.dataset.finaliseCheck, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const answer = await response.json();
    if (warningsBox) {
      const list = warningsBox.querySelector("ul");
      list.replaceChildren(...answer.warnings.map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      }));
      warningsBox.hidden = answer.warnings.length === 0;
    }
    return answer;
  };
  if (finaliseForm) {
    finaliseForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = finaliseForm.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const answer = await askServer();
        if (window.confirm(answer.question)) {
          finaliseForm.elements.missing_marks.value = answer.missing_token;
          finaliseForm.submit();
          return;
        }
      } catch (error) {
        window.alert(finaliseForm.dataset.textCheckFailed ||
          "The marks could not be checked with the server, so nothing was finalised. " +
          "Check the connection and try again.");
      }
      button.disabled = false;
    });
  }

  const grid = document.querySelector("table.gradebook");
  if (!grid) return;
  // A saved (or cleared) mark changes what finalising would warn about: refresh the box. (On
  // the body: the cell that asked is gone once its answer replaced it.)
  if (finaliseForm) {
    document.body.addEventListener("htmx:afterRequest", (event) => {
      const path = (event.detail.pathInfo && event.detail.pathInfo.requestPath) || "";
      if (event.detail.successful && path.endsWith("/gradebook/cell")) {
        askServer().catch(() => {});
      }
    });
  }
  // Enter / ArrowDown go to the same assessment for the next student, ArrowUp to the previous
  // one; Tab moves along the row as usual. Enter never submits the whole form by accident.
  grid.addEventListener("keydown", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.classList.contains("gb-input")) return;
    let step = 0;
    if (event.key === "Enter" || event.key === "ArrowDown") step = event.shiftKey ? -1 : 1;
    else if (event.key === "ArrowUp") step = -1;
    if (step === 0) return;
    event.preventDefault();
    const cell = input.closest("td");
    const row = cell.parentElement;
    const column = Array.prototype.indexOf.call(row.children, cell);
    let next = step > 0 ? row.nextElementSibling : row.previousElementSibling;
    while (next) {
      const target = next.children[column] && next.children[column].querySelector("input.gb-input");
      if (target) {
        target.focus();
        target.select();
        return;
      }
      next = step > 0 ? next.nextElementSibling : next.previousElementSibling;
    }
  });
  // A refused cell (data-unsaved) is sent again when it is left, even unchanged (htmx's
  // "change" only fires for a new value), and every refused cell is sent again once the reason
  // for changing final marks is filled in.
  grid.addEventListener("change", (event) => {
    if (event.target instanceof HTMLInputElement) event.target.dataset.changed = "1";
  });
  grid.addEventListener("focusout", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.matches("input.gb-input[data-unsaved]")) return;
    if (input.dataset.changed) {
      delete input.dataset.changed;
      return;
    }
    htmx.trigger(input, "change");
  });
  const reason = document.getElementById("change-reason");
  if (reason) {
    reason.addEventListener("change", () => {
      if (!reason.value.trim()) return;
      grid.querySelectorAll("input.gb-input[data-unsaved]").forEach((input) => {
        htmx.trigger(input, "change");
      });
    });
  }
  // Select the content of a cell when it gets focus, so typing replaces it.
  grid.addEventListener("focusin", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.classList.contains("gb-input")) {
      event.target.select();
    }
  });
});
