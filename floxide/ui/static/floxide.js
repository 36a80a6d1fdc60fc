// The dashboard's script: live fragments over server-sent events, the node panel, actions.
// Plain DOM code, no framework. Each element with data-event="NAME" is replaced by the
// fragment of the stream's events named NAME (the stream is <main data-stream="...">).
"use strict";

(function () {
  const main = document.querySelector("main");
  const live = document.getElementById("live");
  const flash = document.getElementById("flash");
  let selected = null;

  function say(text, bad) {
    flash.textContent = text;
    flash.className = bad ? "flash bad" : "flash";
    flash.hidden = !text;
  }

  // -- live updates --------------------------------------------------------------------------
  function listen(url) {
    const source = new EventSource(url);
    source.onopen = () => { live.classList.add("on"); };
    source.onerror = () => { live.classList.remove("on"); };
    document.querySelectorAll("[data-event]").forEach((target) => {
      source.addEventListener(target.dataset.event, (event) => {
        target.innerHTML = event.data;
        if (target.dataset.event === "nodes") { filterNodes(); mark(); refreshPanel(); }
        if (target.dataset.event === "picture") { mark(); }
      });
    });
    source.addEventListener("error", (event) => { if (event.data) say(event.data, true); });
    source.addEventListener("recovered", () => say(""));
    source.addEventListener("gone", (event) => { say(event.data, true); source.close(); live.classList.remove("on"); });
    return source;
  }
  if (main && main.dataset.stream) { window.floxideStream = listen(main.dataset.stream); }

  // -- filters apply when chosen (the Filter button stays for keyboards) -------------------------
  document.querySelectorAll("form.filters select").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });

  // -- the node panel ------------------------------------------------------------------------
  const panel = document.getElementById("node-panel");
  async function showNode(name) {
    selected = name;
    mark();
    const response = await fetch(panel.dataset.base + "/nodes/" + encodeURIComponent(name));
    panel.innerHTML = await response.text();
    panel.dataset.node = name;
  }
  let pending = null;
  function refreshPanel() {
    if (!selected || pending) return;
    pending = setTimeout(() => { pending = null; if (selected) showNode(selected); }, 3000);
  }
  function mark() {
    document.querySelectorAll("tr.node").forEach((row) => row.classList.toggle("selected", row.dataset.node === selected));
    document.querySelectorAll("#picture g.node").forEach((g) => g.classList.toggle("selected", g.id === "node-" + selected));
  }
  function nodeOf(target) {
    const g = target.closest("#picture g.node");
    if (g && g.id.startsWith("node-")) return g.id.slice(5);
    const row = target.closest("tr.node");
    return row ? row.dataset.node : null;
  }
  if (panel) {
    document.addEventListener("click", (event) => {
      const name = nodeOf(event.target);
      if (name) { event.preventDefault(); showNode(name); }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.matches("tr.node")) showNode(event.target.dataset.node);
    });
  }

  // -- filtering a long node table -----------------------------------------------------------
  const filter = document.getElementById("node-filter");
  function filterNodes() {
    if (!filter) return;
    const text = filter.value.trim().toLowerCase();
    document.querySelectorAll("tr.node").forEach((row) => {
      row.hidden = text !== "" && !(row.dataset.node.toLowerCase().includes(text) || row.dataset.state === text);
    });
  }
  if (filter) filter.addEventListener("input", filterNodes);

  // -- actions, behind a confirmation ---------------------------------------------------------
  const dialog = document.getElementById("confirm");
  const summary = document.getElementById("summary");
  const words = {
    pause: "Pause this run? Its items wait unprocessed until it is resumed (running steps finish).",
    resume: "Resume this run?",
    retry: "Retry this failed run from where it failed?",
    cancel: "Cancel this run? Its queued items are dropped and its running steps interrupted.",
    cancelsoft: "Cancel this run? Its queued items are dropped; running steps finish, their results are dropped.",
  };
  if (dialog && summary) {
    summary.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const action = button.dataset.action;
      const soft = action === "cancel" && button.dataset.interrupt === "false";
      document.getElementById("confirm-text").textContent = words[soft ? "cancelsoft" : action];
      dialog.returnValue = "";
      dialog.onclose = async () => {
        if (dialog.returnValue !== "ok") return;
        let url = summary.dataset.api + "/" + action;
        if (action === "cancel") url += "?interrupt=" + (soft ? "false" : "true");
        const response = await fetch(url, { method: "POST" });
        const body = await response.json();
        say(response.ok ? "run " + body.run_id + ": " + body.status : body.detail, !response.ok);
      };
      dialog.showModal();
    });
  }
})();
