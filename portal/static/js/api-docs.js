// The API docs page: Swagger UI over the portal's own OpenAPI document. Calls made from the page
// use the browser session, so state-changing ones carry the page's CSRF token.
// Swagger UI leaves two controls without an accessible name; they get one here. The server
// choice is a <select> wrapped in an empty <label>; an expanded nested schema is toggled by a
// button holding only an icon. Their names come translated from the page (data-text-*).
const pageText = (name, fallback) =>
  document.getElementById("swagger-ui")?.dataset[name] || fallback;
const NamedControls = () => ({
  wrapComponents: {
    ModelCollapse: (Original, system) => (props) =>
      system.React.createElement(Original, {
        ...props,
        title:
          props.title ||
          system.React.createElement("span", { className: "visually-hidden" },
            pageText("textNested", "Nested fields"),
          ),
      }),
    Servers: (Original, system) => (props) =>
      system.React.createElement(
        "div",
        null,
        system.React.createElement(
          "label",
          { htmlFor: "servers", className: "visually-hidden" },
          pageText("textServer", "Server that calls from this page go to"),
        ),
        system.React.createElement(Original, props),
      ),
  },
});

document.addEventListener("DOMContentLoaded", () => {
  const target = document.getElementById("swagger-ui");
  const csrf = document.querySelector('meta[name="csrf-token"]');
  window.SwaggerUIBundle({
    url: target.dataset.specUrl,
    domNode: target,
    deepLinking: false,
    tryItOutEnabled: false,
    plugins: [NamedControls],
    requestInterceptor: (request) => {
      if (csrf && request.method && !["GET", "HEAD", "OPTIONS"].includes(request.method)) {
        request.headers["X-CSRFToken"] = csrf.content;
      }
      return request;
    },
  });
});
