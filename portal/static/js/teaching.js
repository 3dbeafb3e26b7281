// Gradebook keyboard moves and the transcript's print button (no inline script: CSP).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });

  const grid = document.querySelector("table.gradebook");
  if (!grid) return;
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
