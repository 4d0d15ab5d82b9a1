// Starts Swagger UI on /docs (serve/api/routers/apidocs.py). A file of this server, not an inline
// script: the page's Content-Security-Policy runs scripts from this server only.
"use strict";
window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapi,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // the default asks validator.swagger.io, which a closed network cannot reach
});
