// The report form of /feedback: fills the environment from the browser, sends the report
// to the receiver's API and shows its reference, or what is wrong next to each field.
// Text from the tester or the server is only ever set with textContent, never as HTML.
(function () {
  "use strict";

  const form = document.getElementById("feedback-form");
  if (!form) {
    return;
  }
  const messages = JSON.parse(document.getElementById("feedback-messages").textContent);
  const statusLine = document.getElementById("feedback-status");
  const errorList = document.getElementById("feedback-errors");
  const submit = document.getElementById("feedback-submit");
  const fileInput = document.getElementById("f-attachments");
  const fileList = document.getElementById("f-attachments-list");
  const done = document.getElementById("feedback-done");
  const maxFiles = Number(form.dataset.maxFiles);
  const maxFileBytes = Number(form.dataset.maxFileBytes);
  const maxFileMib = Number(form.dataset.maxFileMib);
  const lang = document.documentElement.lang || undefined;

  function say(key, values) {
    const found = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    return found.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name)
        ? String(values[name])
        : whole;
    });
  }

  // --- The environment, from the browser itself ---------------------------------------

  function trimVersion(version) {
    return version ? version.replace(/(\.0)+$/, "") : "";
  }

  function join(name, version) {
    return [name, trimVersion(version)].filter(Boolean).join(" ");
  }

  // The OS and browser a User-Agent string names (browsers without userAgentData).
  function parseUserAgent(ua) {
    let os = "";
    let m;
    if ((m = /(iPhone|iPad|iPod).*? OS (\d+(?:_\d+)*)/.exec(ua))) {
      os = join(m[1] === "iPad" ? "iPadOS" : "iOS", m[2].replace(/_/g, "."));
    } else if ((m = /Android (\d+(?:\.\d+)*)/.exec(ua))) {
      os = join("Android", m[1]);
    } else if ((m = /Windows NT (\d+\.\d+)/.exec(ua))) {
      const names = { "10.0": "10/11", "6.3": "8.1", "6.2": "8", "6.1": "7" };
      os = "Windows " + (names[m[1]] || "NT " + m[1]);
    } else if (/CrOS/.test(ua)) {
      os = "ChromeOS";
    } else if ((m = /Mac OS X (\d+(?:[_.]\d+)*)/.exec(ua))) {
      os = join("macOS", m[1].replace(/_/g, "."));
    } else if (/Linux/.test(ua)) {
      os = "Linux";
    }
    const browsers = [
      ["Samsung Internet", /SamsungBrowser\/([\d.]+)/],
      ["Edge", /Edg(?:e|A|iOS)?\/([\d.]+)/],
      ["Opera", /(?:OPR|OPT)\/([\d.]+)/],
      ["Firefox", /(?:Firefox|FxiOS)\/([\d.]+)/],
      ["Chrome", /(?:CriOS|Chrome)\/([\d.]+)/],
      ["Safari", /Version\/([\d.]+).*Safari/],
    ];
    let browser = "";
    for (const [name, pattern] of browsers) {
      if ((m = pattern.exec(ua))) {
        browser = join(name, m[1]);
        break;
      }
    }
    return { os: os, browser: browser };
  }

  // The brand a Chromium browser is, from userAgentData's list (the greasy ones skipped).
  function brandOf(brands) {
    const real = (brands || []).filter(function (b) {
      return !/not.?a.?brand/i.test(b.brand);
    });
    const names = { "Google Chrome": "Chrome", "Microsoft Edge": "Edge" };
    const preferred = real.find(function (b) {
      return b.brand !== "Chromium";
    });
    const brand = preferred || real[0];
    return brand ? join(names[brand.brand] || brand.brand, brand.version) : "";
  }

  function deviceOf(ua, mobile, model) {
    const touch = navigator.maxTouchPoints > 0;
    let kind = "desktop";
    if (/iPad|Tablet/.test(ua) || (/Android/.test(ua) && !/Mobile/.test(ua))) {
      kind = "tablet";
    } else if (mobile || /Mobi|iPhone|iPod/.test(ua)) {
      kind = "mobile";
    } else if (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1) {
      kind = "tablet"; // an iPad asking for desktop sites
    }
    const named = /iPhone|iPad|iPod/.exec(ua);
    const name = model || (named ? named[0] : "");
    const ratio = Math.round((window.devicePixelRatio || 1) * 100) / 100;
    const parts = [
      [name, kind].filter(Boolean).join(" "),
      screen.width + "×" + screen.height + " @" + ratio + "x",
    ];
    if (touch) {
      parts.push("touch");
    }
    return parts.join(", ");
  }

  async function environment() {
    const ua = navigator.userAgent || "";
    const parsed = parseUserAgent(ua);
    const data = navigator.userAgentData;
    if (!data) {
      return { os: parsed.os, browser: parsed.browser, device: deviceOf(ua, false, "") };
    }
    let high = {};
    try {
      high = await data.getHighEntropyValues(["platformVersion", "fullVersionList", "model"]);
    } catch (ignored) {
      // refused or not allowed here: the low-entropy values do
    }
    let os = data.platform || parsed.os;
    if (os === "Windows" && high.platformVersion) {
      // Windows 11 reports platform version 13 and up, Windows 10 1 to 12, older ones 0
      const major = parseInt(high.platformVersion, 10);
      os = major >= 13 ? "Windows 11" : major >= 1 ? "Windows 10" : "Windows";
    } else if (high.platformVersion) {
      os = join(os, high.platformVersion);
    }
    const browser = brandOf(high.fullVersionList || data.brands) || parsed.browser;
    return { os: os, browser: browser, device: deviceOf(ua, data.mobile, high.model || "") };
  }

  function showEnvironment(values) {
    for (const key of ["os", "browser", "device", "app_version"]) {
      const input = form.elements.namedItem("environment." + key);
      if (key !== "app_version") {
        const value = (values[key] || "").slice(0, 200);
        input.value = value;
        input.defaultValue = value; // kept when the form is reset for another report
      }
      const shown = form.querySelector('dd[data-env="' + key + '"]');
      shown.textContent = input.value || say("environment.unknown");
    }
  }

  // --- Messages next to the fields ----------------------------------------------------

  const slots = {};
  for (const field of form.querySelectorAll("[data-field]")) {
    slots[field.dataset.field] = field;
  }

  // The form field a server-named field belongs to: attachments[2] is the file input,
  // "reporter" (no contact given) the e-mail, environment.* the environment summary.
  function slotOf(name) {
    if (/^attachments(\[\d+\])?$/.test(name)) {
      return slots.attachments;
    }
    if (name === "reporter") {
      return slots["reporter.email"];
    }
    if (/^environment\./.test(name)) {
      return slots.environment;
    }
    return Object.prototype.hasOwnProperty.call(slots, name) ? slots[name] : null;
  }

  function clearErrors() {
    for (const slot of Object.values(slots)) {
      const error = slot.querySelector(".field-error");
      error.hidden = true;
      error.textContent = "";
      for (const input of slot.querySelectorAll("input, textarea, select")) {
        input.removeAttribute("aria-invalid");
      }
    }
    errorList.hidden = true;
    errorList.replaceChildren();
    statusLine.hidden = true;
    statusLine.textContent = "";
    statusLine.classList.remove("notice-error");
  }

  function fieldError(name, text) {
    const slot = slotOf(name);
    if (!slot) {
      const item = document.createElement("li");
      item.textContent = name ? name + ": " + text : text;
      errorList.append(item);
      errorList.hidden = false;
      return null;
    }
    const error = slot.querySelector(".field-error");
    const line = document.createElement("span");
    line.textContent = text;
    if (error.childElementCount > 0) {
      error.append(document.createElement("br"));
    }
    error.append(line);
    error.hidden = false;
    const input = slot.querySelector("input:not([type=hidden]), textarea, select");
    if (input) {
      input.setAttribute("aria-invalid", "true");
    }
    return input || error;
  }

  function status(text, isError) {
    statusLine.textContent = text;
    statusLine.hidden = false;
    statusLine.classList.toggle("notice-error", Boolean(isError));
  }

  // --- Files --------------------------------------------------------------------------

  function fileProblems(files) {
    const problems = [];
    if (files.length > maxFiles) {
      problems.push(say("error.too_many", { count: maxFiles }));
    }
    for (const file of files) {
      if (file.size > maxFileBytes) {
        problems.push(say("error.file_too_big", { name: file.name, size: maxFileMib }));
      }
    }
    return problems;
  }

  function listFiles() {
    fileList.replaceChildren();
    for (const file of fileInput.files) {
      const item = document.createElement("li");
      item.textContent = file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)";
      fileList.append(item);
    }
    clearErrors();
    for (const problem of fileProblems(fileInput.files)) {
      fieldError("attachments", problem);
    }
  }

  // --- Sending ------------------------------------------------------------------------

  function retryMessage(response) {
    const seconds = Math.max(1, parseInt(response.headers.get("Retry-After") || "60", 10) || 60);
    const at = new Date(Date.now() + seconds * 1000);
    const time = at.toLocaleTimeString(lang, { hour: "numeric", minute: "2-digit" });
    return say("error.rate_limited", { minutes: Math.ceil(seconds / 60), time: time });
  }

  function showDone(body, title) {
    document.getElementById("feedback-reference").textContent = body.reference || "";
    const text = say("done.text", { title: title });
    document.getElementById("feedback-done-text").textContent = body.duplicate
      ? text + " " + say("done.duplicate")
      : text;
    form.hidden = true;
    done.hidden = false;
    document.getElementById("feedback-done-heading").focus();
  }

  async function send(event) {
    event.preventDefault();
    clearErrors();
    const files = Array.from(fileInput.files);
    const problems = fileProblems(files);
    if (problems.length > 0) {
      problems.forEach((p) => fieldError("attachments", p));
      fileInput.focus();
      return;
    }
    const data = new FormData(form);
    data.delete("attachments"); // an empty file input would send an empty part
    for (const file of files) {
      data.append("attachments", file, file.name);
    }
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    status(say("sending"));
    try {
      await deliver(data, String(data.get("title") || ""));
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  }

  async function deliver(data, title) {
    let response;
    try {
      response = await fetch(form.dataset.endpoint, {
        method: "POST",
        body: data,
        credentials: "omit",
      });
    } catch (failure) {
      status(say("error.network"), true);
      return;
    }
    let body = {};
    try {
      body = await response.json();
    } catch (ignored) {
      // a proxy's HTML error page: the status says enough
    }
    if (response.status === 201 || response.status === 200) {
      statusLine.hidden = true;
      showDone(body, title);
      return;
    }
    if (response.status === 400) {
      status(say("error.invalid"), true);
      let first = null;
      for (const problem of body.fields || []) {
        const target = fieldError(String(problem.field || ""), String(problem.message || ""));
        first = first || target;
      }
      if (first) {
        first.focus();
      }
    } else if (response.status === 413) {
      status(say("error.too_large", { count: maxFiles, size: maxFileMib }), true);
      if (body.field) {
        fieldError(String(body.field), String(body.error || ""));
      }
    } else if (response.status === 429) {
      status(retryMessage(response), true);
    } else if (response.status === 403) {
      status(say("error.forbidden"), true);
    } else {
      status(say("error.server", { status: response.status }), true);
    }
  }

  function again() {
    form.reset();
    fileList.replaceChildren();
    clearErrors();
    done.hidden = true;
    form.hidden = false;
    form.elements.namedItem("title").focus();
  }

  // Exposed for the browser tests of the User-Agent fallback, which Chromium never takes.
  window.ReceiverFeedback = Object.freeze({ parseUserAgent: parseUserAgent });

  fileInput.addEventListener("change", listFiles);
  form.addEventListener("submit", send);
  document.getElementById("feedback-again").addEventListener("click", again);
  showEnvironment({});
  environment()
    .then(showEnvironment)
    .catch(function () {
      showEnvironment(parseUserAgent(navigator.userAgent || ""));
    })
    .finally(function () {
      submit.disabled = false;
      form.dataset.ready = "true";
    });
})();
