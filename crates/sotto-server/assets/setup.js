// The one-time setup page: the token travels in the URL fragment, which browsers never
// send to the server or in a Referer; it is removed from the address bar at once.
"use strict";

(async () => {
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  const state = document.getElementById("state");
  const form = document.getElementById("setup");
  const result = document.getElementById("result");

  const status = await fetch("/api/v1/setup").then((r) => r.json()).catch(() => null);
  if (!status) {
    state.textContent = "This server cannot be reached.";
    return;
  }
  if (status.complete) {
    state.textContent = "This server already has an admin. Ask them for an account.";
    return;
  }
  if (!token) {
    state.textContent = "Open the full link the server printed when it started.";
    return;
  }
  state.textContent = "Choose the first admin's username and password.";
  form.hidden = false;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    if (data.get("password") !== data.get("again")) {
      result.textContent = "The two passwords differ.";
      return;
    }
    const body = {
      setup_token: token,
      username: data.get("username"),
      password: data.get("password"),
    };
    if (data.get("display_name")) body.display_name = data.get("display_name");
    const answer = await fetch("/api/v1/setup", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).catch(() => null);
    if (!answer) {
      result.textContent = "This server cannot be reached.";
    } else if (answer.ok) {
      form.hidden = true;
      state.textContent = "";
      result.textContent = "The admin account is ready. Log in with a Sotto client.";
    } else {
      const error = await answer.json().catch(() => null);
      result.textContent = error ? error.error.message : "The server refused (" + answer.status + ").";
    }
  });
})();
