// Keyboard shortcuts of the review queue and the document page (no framework, no build step).
// j/k next/previous, a/r/v put focus on approve/reject/request revision (Enter confirms),
// c the comment, / the search, ? the help. Never while typing in a field, never with Ctrl, Alt
// or Cmd held; what a key did is announced to screen readers (#key-announcer).
(() => {
  const isTyping = (element) =>
    !!element &&
    (element.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(element.tagName));

  const announce = (text) => {
    const live = document.getElementById("key-announcer");
    if (!live) return;
    live.textContent = "";
    // A fresh text node after a tick, so the same message twice is read twice.
    window.setTimeout(() => { live.textContent = text; }, 30);
  };

  const queueLinks = () => Array.from(document.querySelectorAll("#queue tr.open a[data-key-row]"));

  const moveInQueue = (step) => {
    const links = queueLinks();
    if (!links.length) return announce("The queue is empty.");
    const at = links.indexOf(document.activeElement);
    const next = at === -1 ? (step > 0 ? 0 : links.length - 1) : at + step;
    if (next < 0 || next >= links.length) {
      return announce(step > 0 ? "Last document in the list." : "First document in the list.");
    }
    links[next].focus();
    document.querySelectorAll("#queue tr.selected").forEach((row) => row.classList.remove("selected"));
    links[next].closest("tr").classList.add("selected");
    announce(`${links[next].textContent.trim()}, ${next + 1} of ${links.length}. Enter opens it.`);
  };

  const follow = (which) => {
    const link = (which === "next" && document.getElementById("next-document")) ||
      document.querySelector(`a[data-key="${which}"]`);
    if (!link) return announce(which === "next" ? "No next document in the queue." : "No previous document in the queue.");
    announce(`Opening ${link.textContent.trim()}`);
    window.location.assign(link.href);
  };

  const focusDecision = (value, words) => {
    const button = document.querySelector(`form.decide button[value="${value}"]`);
    if (!button) return announce("This review cannot be decided here.");
    if (value === "revise") {
      const comment = document.getElementById("id_comment");
      if (comment && !comment.value.trim()) {
        comment.focus();
        return announce("A revision needs feedback: write what to change, then Tab to Request revision.");
      }
    }
    button.focus();
    announce(`${words}: press Enter to confirm, Tab to move on.`);
  };

  const actions = {
    j: () => (document.getElementById("queue") ? moveInQueue(1) : follow("next")),
    k: () => (document.getElementById("queue") ? moveInQueue(-1) : follow("prev")),
    a: () => focusDecision("approved", "Approve"),
    r: () => focusDecision("rejected", "Reject"),
    v: () => focusDecision("revise", "Request revision"),
    c: () => {
      const comment = document.getElementById("id_comment");
      if (!comment) return announce("There is no comment to write here.");
      comment.focus();
      announce("Comment field.");
    },
    "/": () => {
      const search = document.getElementById("queue-q");
      if (search) search.focus();
    },
    "?": () => {
      const help = document.getElementById("shortcuts");
      if (help && !help.open) help.showModal();
    },
  };

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) return;
    if (isTyping(event.target) || isTyping(document.activeElement)) return;
    const help = document.getElementById("shortcuts");
    if (help && help.open) return; // the dialog has its own keys (Escape, Tab, Enter)
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  // Tests (and curious people) can tell the shortcuts are listening.
  document.documentElement.dataset.keys = "on";

  // After a decision the page offers the next document: put the keyboard there.
  document.addEventListener("htmx:afterSwap", () => {
    const next = document.getElementById("next-document");
    if (next && document.activeElement !== next) next.focus();
    const queue = document.getElementById("queue");
    if (queue && queue.dataset.title) document.title = queue.dataset.title;
  });
})();
