// The composer (per-platform counters from POST /limits/check, save as draft / at a time /
// at the best time, edit) and the week view's drag to reschedule. Every change goes through
// the JSON API with the session's CSRF token, as the Cancel and Retry buttons do.
"use strict";

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

async function callApi(method, url, body) {
  const response = await fetch(url, {
    method, credentials: "same-origin",
    headers: {"X-CSRF-Token": csrfToken(), "Content-Type": "application/json",
              "Accept": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  return {ok: response.ok, status: response.status, data};
}

function problemsOf(result) {
  const error = (result.data && result.data.error) || {message: "HTTP " + result.status, fields: {}};
  return error;
}

// -- the composer ---------------------------------------------------------------------------

function setupComposer(composer) {
  const content = document.getElementById("content");
  const media = document.getElementById("media");
  const counters = document.getElementById("counters");
  const message = document.getElementById("composer-message");
  const errors = document.getElementById("errors");
  const accounts = () => [...composer.querySelectorAll('input[name="account"]')].filter((i) => i.checked);
  const mediaUrls = () => media.value.split("\n").map((u) => u.trim()).filter((u) => u);
  let sequence = 0;
  let timer = null;

  function showErrors(error) {
    errors.replaceChildren(...Object.entries(error.fields || {}).map(([field, why]) => {
      const item = document.createElement("li");
      item.textContent = field + ": " + why;
      item.dataset.field = field;
      return item;
    }));
  }

  async function refresh() {
    const platforms = [...new Set(accounts().map((i) => i.dataset.platform))];
    const mine = ++sequence;
    if (!platforms.length) { counters.replaceChildren(); return; }
    const result = await callApi("POST", "/limits/check",
                                 {content: content.value, mediaUrls: mediaUrls(), platforms});
    if (mine !== sequence) return;  // a newer keystroke's answer is on its way
    if (!result.ok) { showErrors(problemsOf(result)); return; }
    errors.replaceChildren();
    counters.replaceChildren(...result.data.items.map((item) => {
      const li = document.createElement("li");
      const over = item.length > item.maxLength;
      li.dataset.platform = item.platform;
      li.dataset.length = item.length;
      li.className = over ? "over" : "";
      const problems = Object.entries(item.problems).filter(([f]) => content.value || f !== "content");
      li.textContent = item.platform + " " + item.length + "/" + item.maxLength +
        (item.counting !== "characters" ? " (" + item.counting + ")" : "") +
        (problems.length ? ": " + problems.map(([f, why]) => f + " " + why).join("; ") : "");
      return li;
    }));
    counters.dataset.ready = String(mine);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 120);
  }

  content.addEventListener("input", later);
  media.addEventListener("input", later);
  composer.querySelectorAll('input[name="account"]').forEach((box) => box.addEventListener("change", later));
  refresh();

  function localTime() {
    const at = document.getElementById("at").value;  // YYYY-MM-DDTHH:MM, the company's zone
    return at.length === 16 ? at + ":00" : at;
  }

  function done(text, ids) {
    message.className = "ok";
    message.replaceChildren(document.createTextNode(text + " "));
    (ids || []).forEach((id) => {
      const link = document.createElement("a");
      link.href = "/dashboard/posts/" + id;
      link.textContent = "open";
      link.dataset.post = id;
      message.append(link, " ");
    });
    errors.replaceChildren();
  }

  function failed(result) {
    const error = problemsOf(result);
    message.className = "error";
    message.textContent = "Refused: " + error.message;
    showErrors(error);
  }

  async function save() {
    const when = composer.querySelector('input[name="when"]:checked').value;
    const postId = composer.dataset.post;
    message.textContent = "Saving...";
    message.className = "";
    if (!postId) {
      const body = {socialAccountIds: accounts().map((i) => i.value), content: content.value,
                    mediaUrls: mediaUrls()};
      if (when === "time") body.scheduledAt = localTime();
      const created = await callApi("POST", "/schedule-post", body);
      if (!created.ok) return failed(created);
      const ids = created.data.posts.map((p) => p.id);
      if (when === "best") {
        for (const id of ids) {
          const queued = await callApi("POST", "/scheduled-posts/" + id + "/schedule", {scheduledAt: "best"});
          if (!queued.ok) return failed(queued);
        }
      }
      return done(when === "draft" ? "Saved as draft." : "Scheduled.", ids);
    }
    const status = composer.dataset.status;
    const change = {content: content.value, mediaUrls: mediaUrls()};
    if (status !== "draft" && when === "time") change.scheduledAt = localTime();
    const edited = await callApi("PATCH", "/scheduled-posts/" + postId, change);
    if (!edited.ok) return failed(edited);
    if (status === "draft" && when !== "draft") {
      const queued = await callApi("POST", "/scheduled-posts/" + postId + "/schedule",
                                   {scheduledAt: when === "best" ? "best" : localTime()});
      if (!queued.ok) return failed(queued);
      composer.dataset.status = queued.data.status;
      return done("Scheduled.", [postId]);
    }
    return done("Saved.", [postId]);
  }

  document.getElementById("save").addEventListener("click", async (event) => {
    event.target.disabled = true;
    try { await save(); } finally { event.target.disabled = false; }
  });
}

// -- the week view: drag a pending post to another day and hour -----------------------------

function setupCalendar(calendar) {
  const message = document.getElementById("calendar-message");
  calendar.addEventListener("dragstart", (event) => {
    const post = event.target.closest("a[data-post][draggable='true']");
    if (!post) return;
    event.dataTransfer.setData("text/plain", post.dataset.post + " " + post.dataset.time);
    event.dataTransfer.effectAllowed = "move";
  });
  calendar.addEventListener("dragover", (event) => {
    if (event.target.closest(".day")) event.preventDefault();
  });
  calendar.addEventListener("drop", async (event) => {
    const day = event.target.closest(".day");
    if (!day) return;
    event.preventDefault();
    const [postId, time] = event.dataTransfer.getData("text/plain").split(" ");
    if (!postId) return;
    const slot = event.target.closest("[data-hour]");
    const hour = slot ? slot.dataset.hour.padStart(2, "0") : time.slice(0, 2);
    const scheduledAt = day.dataset.date + "T" + hour + ":" + time.slice(3, 5) + ":00";
    const result = await callApi("PATCH", "/scheduled-posts/" + postId, {scheduledAt});
    if (result.ok) {
      message.className = "ok";
      message.textContent = "Moved to " + scheduledAt.replace("T", " ").slice(0, 16) + ".";
      setTimeout(() => window.location.reload(), 400);
    } else {
      message.className = "error";
      message.textContent = "Refused: " + problemsOf(result).message;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const composer = document.getElementById("composer");
  if (composer) setupComposer(composer);
  const calendar = document.querySelector(".calendar.week");
  if (calendar) setupCalendar(calendar);
});
