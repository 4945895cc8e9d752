// Start Swagger UI on the gateway's OpenAPI document. A token given in the page's own URL (?token=...)
// is added to every request the UI makes, so the spec and "Try it out" work on protected gateways
// without the server ever writing the token into a response.
(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: (request) => {
      if (token) {
        request.headers["Authorization"] = "token " + token;
      }
      return request;
    },
  });
})();
