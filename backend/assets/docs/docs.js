// The API page: Swagger UI (vendored, served by this server) on this server's own OpenAPI document.
// "Try it out" calls carry the token given with "Authorize"; without one, the token the web app keeps
// in this browser (localStorage "agentstream.token", set when the app asked for it) is used.
window.addEventListener("load", function () {
  "use strict";
  var stored = null;
  try {
    stored = window.localStorage.getItem("agentstream.token");
  } catch (e) {
    stored = null;
  }
  var note = document.getElementById("token-note");
  var ui = window.SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge from an online validator: this page loads nothing from another host.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: true,
    onComplete: function () {
      if (stored) {
        ui.preauthorizeApiKey("bearerAuth", stored);
        note.textContent = "using the web app's token (change it with Authorize)";
      } else {
        note.textContent = "a server with a token: enter it with Authorize";
      }
    },
  });
  window.ui = ui;
});
