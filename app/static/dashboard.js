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
