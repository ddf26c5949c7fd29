// Upload page: send the file to the API with a real progress bar (bytes sent), then poll the upload for
// rows processed, and show the summary and the rejected rows. Without JavaScript the form posts to the
// page itself and the upload page refreshes until the file is processed.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const $ = (selector) => document.querySelector(selector);
  const fileInput = form.querySelector("input[type=file]");
  const formatInput = form.querySelector("select[name=format]");
  const mappingFields = ["input", "output", "timestamp", "model", "input_tokens", "output_tokens"];
  const terminal = ["succeeded", "failed", "stopped"];
  const number = (value) => Number(value || 0).toLocaleString();

  function setBar(bar, fraction) {
    const percent = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    bar.querySelector("span").style.width = percent + "%";
    bar.setAttribute("aria-valuenow", String(percent));
  }

  function text(node, value) { node.textContent = value; }

  // --- CSV header: list the columns so the mapping can be chosen from them -------------------------------
  function parseCsvHeader(line) {
    const cells = []; let cell = ""; let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { cell += '"'; i++; }
        else if (ch === '"') quoted = false;
        else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { cells.push(cell.trim()); cell = ""; }
      else cell += ch;
    }
    cells.push(cell.trim());
    return cells.filter((name) => name.length);
  }

  function guess(columns, candidates) {
    const lower = columns.map((c) => c.toLowerCase());
    for (const candidate of candidates) {
      const index = lower.indexOf(candidate);
      if (index >= 0) return columns[index];
    }
    return "";
  }

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    const found = $("#csv-columns-found");
    if (!file) return;
    const isCsv = /\.csv$/i.test(file.name) || formatInput.value === "csv";
    if (!isCsv) { text(found, "Not a CSV file: no column mapping needed (JSON Lines rows name their fields)."); return; }
    file.slice(0, 65536).text().then((head) => {
      const firstLine = head.replace(/^\uFEFF/, "").split(/\r?\n/)[0] || "";
      const columns = parseCsvHeader(firstLine);
      const list = $("#csv-columns");
      list.innerHTML = "";
      columns.forEach((name) => { const option = document.createElement("option"); option.value = name; list.appendChild(option); });
      text(found, columns.length ? "Columns in the file: " + columns.join(", ") : "No header row found in the file.");
      const input = form.querySelector("[name=input_column]"), output = form.querySelector("[name=output_column]");
      const hasDefaults = guess(columns, ["input", "prompt"]) && guess(columns, ["output", "completion"]);
      if (!hasDefaults) {
        if (!input.value) input.value = guess(columns, ["text", "question", "query", "request", "message"]);
        if (!output.value) output.value = guess(columns, ["category", "label", "intent", "answer", "response", "target"]);
      }
    });
  });

  // --- send the file with upload progress ----------------------------------------------------------------
  function columnMapping() {
    const mapping = {};
    mappingFields.forEach((field) => {
      const input = form.querySelector(`[name=${field}_column]`);
      if (input && input.value.trim()) mapping[field] = input.value.trim();
    });
    return mapping;
  }

  function showError(message) {
    const status = $("#upload-status");
    status.className = "error";
    text(status, message);
    $("#upload-button").disabled = false;
  }

  function errorMessage(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      return body.error ? body.error.message : xhr.statusText;
    } catch (e) {
      return `The server answered ${xhr.status} ${xhr.statusText}.`;
    }
  }

  form.addEventListener("submit", (event) => {
    const file = fileInput.files[0];
    if (!file || !window.FormData || !window.XMLHttpRequest) return; // plain form post
    event.preventDefault();
    const maxBytes = Number(form.dataset.maxBytes || 0);
    $("#upload-progress").hidden = false;
    if (maxBytes && file.size > maxBytes) {
      showError(`The file is ${number(file.size)} bytes; the limit for one upload is ${number(maxBytes)} bytes.`);
      return;
    }
    const data = new FormData();
    data.append("file", file);
    data.append("format", formatInput.value);
    const mapping = columnMapping();
    if (Object.keys(mapping).length) data.append("column_mapping", JSON.stringify(mapping));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      setBar($("#bytes-bar"), e.loaded / e.total);
      text($("#bytes-text"), `${number(e.loaded)} of ${number(e.total)} bytes`);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status !== 202) { showError(errorMessage(xhr)); return; }
      setBar($("#bytes-bar"), 1);
      const upload = JSON.parse(xhr.responseText);
      text($("#upload-status"), "File received; processing rows…");
      poll(upload.id);
    });
    xhr.addEventListener("error", () => showError("The upload failed: the connection was lost. Try again."));
    $("#upload-button").disabled = true;
    $("#upload-status").className = "";
    text($("#upload-status"), "Sending the file…");
    xhr.send(data);
  });

  // --- follow the processing ------------------------------------------------------------------------------
  function poll(id) {
    fetch(form.dataset.uploadApi + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => response.json().then((body) => ({ ok: response.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) { showError(body.error ? body.error.message : "Could not read the upload's status."); return; }
        render(body);
        if (terminal.includes(body.status)) finish(body);
        else setTimeout(() => poll(id), 1000);
      })
      .catch(() => setTimeout(() => poll(id), 3000));
  }

  function render(upload) {
    setBar($("#rows-bar"), upload.progress);
    text($("#rows-text"), `${number(upload.rows_read)} rows read (${Math.round(upload.progress * 100)}% of the file)`);
    ["rows_read", "accepted", "rejected", "duplicates"].forEach((key) => text($("#count-" + key), number(upload[key])));
    $("#upload-summary").hidden = false;
    if (upload.status === "pending") text($("#upload-status"), "File received; waiting for a worker to start…");
    else if (upload.status === "processing") text($("#upload-status"), "Processing rows…");
    if (upload.stalled) text($("#upload-status"), "The worker has not reported for a while; it may have stopped. Open the upload to resume it.");
  }

  function finish(upload) {
    const status = $("#upload-status");
    status.className = upload.status === "succeeded" ? "" : "error";
    // The message says what happened ("Stopped early: ...", "The file was refused: ..."); success gets a prefix.
    text(status, upload.status === "succeeded" ? `Done: ${upload.message}` : upload.message);
    const links = $("#upload-links");
    links.innerHTML = "";
    const add = (href, label) => {
      if (links.childNodes.length) links.appendChild(document.createTextNode(" · "));
      const a = document.createElement("a"); a.href = href; a.textContent = label; links.appendChild(a);
    };
    add(form.dataset.uploadPage + upload.id + "/", "Upload details");
    if (upload.rejected) { add(upload.errors_url + "?format=csv", "Error report (CSV)"); add(upload.errors_url + "?format=jsonl", "Error report (JSONL)"); }
    add(form.dataset.api.replace(/\/api\/v1\/tasks\/([^/]+)\/uploads\/?$/, "/tasks/$1/"), "Dataset");
    const errors = upload.errors || [];
    if (errors.length) {
      const body = $("#upload-errors tbody");
      body.innerHTML = "";
      errors.forEach((error) => {
        const row = document.createElement("tr");
        [error.line, error.field, error.message].forEach((value) => { const cell = document.createElement("td"); cell.textContent = value; row.appendChild(cell); });
        body.appendChild(row);
      });
      $("#upload-errors").hidden = false;
    }
    $("#upload-button").disabled = false;
  }
})();
