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
  // screen, so nothing stays on screen for the next person. htmx requests count as activity,
  // except those an element makes by itself (a progress poll, marked data-passive; its route
  // is @passive on the server too).
  const idleMinutes = Number(document.body.dataset.idleLogoutMinutes || 0);
  const logoutForm = document.getElementById("logout-form");
  if (idleMinutes > 0 && logoutForm) {
    let timer = null;
    let loggingOut = false;
    const arm = () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => {
        // Nothing else may reach the server once the log-out is on its way: a poll answered
        // after it would race the log-out's answer for the session cookie (and its message).
        loggingOut = true;
        document.querySelectorAll("[hx-get], [hx-post], [hx-trigger]").forEach((element) => {
          if (window.htmx) window.htmx.trigger(element, "htmx:abort");
        });
        logoutForm.elements.reason.value = "idle";
        logoutForm.submit();
      }, idleMinutes * 60 * 1000 + 1000);
    };
    ["htmx:beforeRequest", "htmx:beforeOnLoad"].forEach((name) => {
      document.body.addEventListener(name, (event) => {
        if (loggingOut) event.preventDefault();
      });
    });
    arm();
    document.body.addEventListener("htmx:afterRequest", (event) => {
      // The element that asked (detail.elt is its parent once an outerHTML swap removed it).
      const source = (event.detail.requestConfig && event.detail.requestConfig.elt) || event.detail.elt;
      if (!source.closest("[data-passive]")) arm();
    });
  }
  // Date-times are typed in the browser's own time zone: forms say which one it is, and a
  // stored UTC value (data-utc-value) is shown as local time (the server stores UTC).
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  document.querySelectorAll("input[data-local-timezone]").forEach((input) => {
    input.value = zone;
  });
  document.querySelectorAll("input[data-utc-value]").forEach((input) => {
    const moment = new Date(input.dataset.utcValue);
    if (Number.isNaN(moment.getTime())) return;
    const pad = (n) => String(n).padStart(2, "0");
    input.value = `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}` +
      `T${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
  });
  // Send the CSRF token with every htmx request.
  const token = document.querySelector('meta[name="csrf-token"]');
  if (token) {
    document.body.addEventListener("htmx:configRequest", (event) => {
      event.detail.headers["X-CSRFToken"] = token.content;
    });
  }
});
