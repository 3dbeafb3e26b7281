// The API docs page: Swagger UI over the portal's own OpenAPI document. Calls made from the page
// use the browser session, so state-changing ones carry the page's CSRF token.
document.addEventListener("DOMContentLoaded", () => {
  const target = document.getElementById("swagger-ui");
  const csrf = document.querySelector('meta[name="csrf-token"]');
  window.SwaggerUIBundle({
    url: target.dataset.specUrl,
    domNode: target,
    deepLinking: false,
    tryItOutEnabled: false,
    requestInterceptor: (request) => {
      if (csrf && request.method && !["GET", "HEAD", "OPTIONS"].includes(request.method)) {
        request.headers["X-CSRFToken"] = csrf.content;
      }
      return request;
    },
  });
});
