// Training pages: base-model defaults on the start form, and live progress on the job page.
// The pages work without JavaScript; this only fills in placeholders and polls the JSON API (session auth).
(function () {
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const POLL_MS = 1500;

  function formatSeconds(seconds) {
    if (seconds == null) return "–";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    const minutes = Math.floor(seconds / 60), rest = seconds % 60;
    if (minutes < 60) return minutes + " min " + rest + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  // --- start form: show the chosen base model's defaults as placeholders --------------------------
  function setupForm() {
    const form = document.getElementById("training-job-form");
    const data = document.getElementById("base-model-defaults");
    if (!form || !data) return;
    const options = JSON.parse(data.textContent);
    const select = form.querySelector("select[name=base_model]");
    const estimate = document.getElementById("training-estimate");
    function apply() {
      const option = options.find((o) => o.name === select.value) || options[0];
      if (!option) return;
      Object.entries(option.defaults).forEach(([name, value]) => {
        const input = form.querySelector(`[name=${name}]`);
        if (input) input.placeholder = value;
      });
      if (estimate) estimate.textContent = option.estimate.text;
    }
    select.addEventListener("change", apply);
    apply();
  }

  // --- job page: poll the job and its events until it ends ------------------------------------------
  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  function text(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = value;
  }

  function renderJob(job) {
    const progress = job.progress;
    const bar = document.getElementById("job-progress-bar");
    if (bar) bar.style.width = progress.percent + "%";
    const wrapper = bar && bar.parentElement;
    if (wrapper) wrapper.setAttribute("aria-valuenow", progress.percent);
    text("job-state", job.cancel_requested && !TERMINAL.includes(job.state) ? job.state + " (cancelling)" : job.state);
    document.querySelectorAll("[data-state-badge]").forEach((badge) => {
      badge.textContent = job.state;
      badge.className = "badge " + (job.state === "succeeded" ? "ok" : job.state === "failed" ? "bad" : job.state === "cancelled" ? "" : "warn");
    });
    text("job-step", progress.step);
    text("job-total", progress.total_steps || "?");
    text("job-percent", progress.percent);
    text("job-eta", formatSeconds(progress.eta_seconds));
    text("job-speed", progress.examples_per_second ? progress.examples_per_second + " examples/s" : "");
    const error = document.getElementById("job-error");
    if (error && job.error) { error.textContent = job.error; error.hidden = false; }
    const chart = document.getElementById("job-loss-chart");
    if (chart && window.Charts) {
      window.Charts.line(chart, { series: [{ label: "loss", points: job.loss_curve }], xLabel: "step" });
    }
    const version = document.getElementById("job-model-version");
    if (version && job.model_version) {
      const link = version.querySelector("a");
      link.href = "/training/models/" + job.model_version.id + "/";
      link.textContent = job.model_version.name;
      version.hidden = false;
    }
    if (TERMINAL.includes(job.state)) {
      const cancel = document.getElementById("job-cancel-form");
      if (cancel) cancel.remove();
    }
  }

  function renderEvents(body) {
    const tbody = document.querySelector("#job-events tbody");
    if (!tbody) return;
    const rows = body.results || body;
    tbody.replaceChildren(
      ...rows.map((event) => {
        const row = document.createElement("tr");
        const time = new Date(event.created_at).toLocaleTimeString();
        [time, event.level, event.message].forEach((value) => {
          const cell = document.createElement("td");
          cell.textContent = value;
          row.appendChild(cell);
        });
        return row;
      })
    );
  }

  function setupJobPage() {
    const root = document.getElementById("training-job");
    if (!root || root.dataset.finished === "true") return;
    let failures = 0;
    async function poll() {
      try {
        const job = await getJson(root.dataset.jobUrl);
        renderJob(job);
        renderEvents(await getJson(root.dataset.eventsUrl));
        failures = 0;
        if (TERMINAL.includes(job.state)) {
          root.dataset.finished = "true";
          return;
        }
      } catch (error) {
        failures += 1;  // a restarting server: back off, keep trying
      }
      setTimeout(poll, POLL_MS * Math.min(1 + failures, 10));
    }
    setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupForm();
    setupJobPage();
  });
})();
