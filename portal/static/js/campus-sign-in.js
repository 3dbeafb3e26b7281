// The window's side of "Sign in with your campus account" (templates/auth/campus_waiting.html):
// the sign-in happens in the system browser or on a phone, which cannot reach this window, so
// the page asks the local portal where it stands and goes on when it is done.
document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("[data-campus-sign-in]");
  if (!card) return;
  const message = card.querySelector("[data-campus-sign-in-message]");
  const EVERY_MS = 1000;

  async function check() {
    let status;
    try {
      const response = await fetch(card.dataset.statusUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      status = await response.json();
    } catch (error) {
      setTimeout(check, EVERY_MS * 3);
      return;
    }
    if (status.state === "done") {
      window.location.assign(status.next);
    } else if (status.state === "failed") {
      message.textContent = status.message;
      message.classList.add("text-danger");
    } else {
      setTimeout(check, EVERY_MS);
    }
  }
  setTimeout(check, EVERY_MS);
});
