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
  // Select the content of a cell when it gets focus, so typing replaces it.
  grid.addEventListener("focusin", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.classList.contains("gb-input")) {
      event.target.select();
    }
  });
});
