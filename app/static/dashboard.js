// Cancel / Retry: call the JSON API with the session's CSRF token, then show what it said.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const message = document.getElementById("message");
  const token = document.querySelector('meta[name="csrf-token"]').content;
  button.disabled = true;
  try {
    const response = await fetch(button.dataset.url, {
      method: button.dataset.action, credentials: "same-origin",
      headers: {"X-CSRF-Token": token, "Accept": "application/json"},
    });
    const body = await response.json();
    if (response.ok) {
      message.textContent = "Done: the post is " + body.status + ".";
      message.className = "ok";
      setTimeout(() => window.location.reload(), 600);
    } else {
      message.textContent = "Refused: " + body.error.message;
      message.className = "error";
    }
  } catch (error) {
    message.textContent = "Could not reach the API: " + error;
    message.className = "error";
  } finally {
    button.disabled = false;
  }
});

// Connect: start the platform's flow through the JSON API, then go to its authorize page
// (or, for a flow without one, show the accounts it connected).
document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-connect]");
  if (!form) return;
  event.preventDefault();
  const message = document.getElementById("message");
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const body = {};
  for (const [name, value] of new FormData(form)) if (value) body[name] = value;
  try {
    const response = await fetch(form.dataset.connect, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"X-CSRF-Token": token, "Accept": "application/json",
                "Content-Type": "application/json"},
    });
    const answer = await response.json();
    if (!response.ok) {
      message.textContent = "Refused: " + answer.error.message;
      message.className = "error";
    } else if (answer.authorizeUrl) {
      window.location.assign(answer.authorizeUrl);
    } else {
      window.location.reload();
    }
  } catch (error) {
    message.textContent = "Could not reach the API: " + error;
    message.className = "error";
  }
});
