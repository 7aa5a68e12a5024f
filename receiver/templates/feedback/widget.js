// The receiver's feedback button, for the trading web app:
//   <script src="https://receiver.example/feedback/widget.js" data-app-version="1.4.2"
//           data-lang="ko" defer></script>
// A floating button opens a dialog with the receiver's report form (/feedback) in an
// iframe: the form keeps its own styles and policy whatever the host page has, and it
// fills the environment from this same browser. The host page's CSP, if it has one, must
// allow this script (script-src) and the receiver's origin in frame-src.
(function () {
  "use strict";

  var CONFIG = {{ config|tojson }};
  var script = document.currentScript;
  if (!script || !script.src) {
    return; // loaded as a module or injected oddly: nothing to find the receiver by
  }
  var root = document.documentElement;
  if (root.hasAttribute("data-receiver-feedback")) {
    return; // included twice
  }
  root.setAttribute("data-receiver-feedback", "");

  var origin = new URL(script.src, document.baseURI).origin;
  var wanted = script.getAttribute("data-lang") || "";
  var lang = Object.prototype.hasOwnProperty.call(CONFIG.messages, wanted)
    ? wanted
    : CONFIG.locale;
  var text = CONFIG.messages[lang];
  var appVersion = script.getAttribute("data-app-version") || "";

  function formUrl() {
    var url = new URL(CONFIG.path, origin);
    url.searchParams.set("embed", "1");
    url.searchParams.set("lang", lang);
    if (appVersion) {
      url.searchParams.set("app_version", appVersion);
    }
    return url.href;
  }

  // Styles set one by one (CSSOM), which a host page's CSP allows, and which win over
  // the host's own rules for these elements; buttons start from nothing of the host's.
  function styled(tag, styles, fresh) {
    var element = document.createElement(tag);
    if (fresh) {
      element.style.setProperty("all", "initial");
    }
    for (var name in styles) {
      if (Object.prototype.hasOwnProperty.call(styles, name)) {
        element.style.setProperty(name, styles[name]);
      }
    }
    return element;
  }

  var font = "system-ui, -apple-system, 'Segoe UI', 'Apple SD Gothic Neo', sans-serif";
  var button = styled(
    "button",
    {
      position: "fixed",
      right: "16px",
      bottom: "16px",
      "z-index": "2147483000",
      "min-height": "48px",
      "min-width": "48px",
      padding: "12px 20px",
      "border-radius": "24px",
      background: "#0b5cd5",
      color: "#ffffff",
      "font-family": font,
      "font-size": "16px",
      "font-weight": "600",
      "line-height": "1.5",
      "box-shadow": "0 2px 8px rgba(0, 0, 0, 0.3)",
      cursor: "pointer",
    },
    true
  );
  button.type = "button";
  button.id = "receiver-feedback-button";
  button.textContent = text["widget.button"];
  button.setAttribute("aria-haspopup", "dialog");

  // A modal <dialog>: it takes the focus, Escape closes it, the page behind is inert.
  var dialog = styled("dialog", {
    width: "min(640px, calc(100vw - 16px))",
    height: "min(860px, calc(100dvh - 16px))",
    "max-width": "none",
    "max-height": "none",
    padding: "0",
    border: "0",
    "border-radius": "12px",
    background: "#ffffff",
    "box-shadow": "0 8px 32px rgba(0, 0, 0, 0.4)",
    overflow: "hidden",
  });
  dialog.id = "receiver-feedback-dialog";
  dialog.setAttribute("aria-label", text["widget.dialog"]);

  var bar = styled("div", {
    height: "52px",
    "text-align": "right",
    "border-bottom": "1px solid #d0d7de",
    background: "#f6f8fa",
  });
  var close = styled(
    "button",
    {
      display: "inline-block",
      width: "48px",
      height: "48px",
      margin: "2px",
      "font-family": font,
      "font-size": "28px",
      "line-height": "48px",
      "text-align": "center",
      color: "#1b1f24",
      cursor: "pointer",
    },
    true
  );
  close.type = "button";
  close.id = "receiver-feedback-close";
  close.textContent = "\u00d7";
  close.setAttribute("aria-label", text["widget.close"]);
  close.title = text["widget.close"];
  bar.append(close);

  var frame = null;

  function open() {
    if (frame === null) {
      frame = styled("iframe", {
        display: "block",
        width: "100%",
        height: "calc(100% - 53px)",
        border: "0",
      });
      frame.id = "receiver-feedback-frame";
      frame.title = text["widget.dialog"];
      frame.src = formUrl();
      dialog.append(frame);
    }
    if (!dialog.open) {
      dialog.showModal();
    }
  }

  button.addEventListener("click", open);
  close.addEventListener("click", function () {
    dialog.close();
  });
  dialog.addEventListener("click", function (event) {
    if (event.target === dialog) {
      dialog.close(); // a tap on the backdrop
    }
  });
  dialog.addEventListener("close", function () {
    button.focus();
  });
  dialog.append(bar);

  function mount() {
    document.body.append(button, dialog);
  }
  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount);
  }
})();
