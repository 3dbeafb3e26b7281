// Small behaviours without inline script (the Content-Security-Policy forbids it).
document.addEventListener("DOMContentLoaded", () => {
  // Forms with data-confirm ask before submitting (drops, deactivations).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // Idle log-out (shared lab PCs): the server ends a session idle for the configured minutes;
  // when that time has passed since the last request, the page itself goes to the log-in
  // screen, so nothing stays on screen for the next person. htmx requests count as activity.
  const idleMinutes = Number(document.body.dataset.idleLogoutMinutes || 0);
  const logoutForm = document.getElementById("logout-form");
  if (idleMinutes > 0 && logoutForm) {
    let timer = null;
    const arm = () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => {
        logoutForm.elements.reason.value = "idle";
        logoutForm.submit();
      }, idleMinutes * 60 * 1000 + 1000);
    };
    arm();
    document.body.addEventListener("htmx:afterRequest", arm);
  }
  // Send the CSRF token with every htmx request.
  const token = document.querySelector('meta[name="csrf-token"]');
  if (token) {
    document.body.addEventListener("htmx:configRequest", (event) => {
      event.detail.headers["X-CSRFToken"] = token.content;
    });
  }
});
